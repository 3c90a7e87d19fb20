"""The shared core's small pieces: tables, flags -> config."""

import argparse
import dataclasses

import pytest

from keras_pae.core import cli
from keras_pae.core.tables import markdown_table


def test_markdown_table():
    assert markdown_table(("run", "px"), [("a", 1.5), ("b", 2)], align="lr") == (
        "| run | px |\n|---|---:|\n| a | 1.5 |\n| b | 2 |"
    )
    with pytest.raises(ValueError, match="2 columns"):
        markdown_table(("run", "px"), [], align="l")


@dataclasses.dataclass
class _Config:
    dataset: str = "lunarlander"
    epochs: int = 50
    deterministic: bool = True
    out: str = None


def test_config_from_args_fills_fields_of_the_same_name_and_keeps_defaults():
    args = argparse.Namespace(dataset="svhn", nondeterministic=True, overwrite=True)
    config = cli.config_from_args(_Config, args, deterministic=not args.nondeterministic)
    assert config == _Config(dataset="svhn", epochs=50, deterministic=False, out=None)


def test_fit_verbosity_keeps_explicit_values():
    assert cli.fit_verbosity(0) == 0 and cli.fit_verbosity(2) == 2
    assert cli.fit_verbosity("auto") in (1, 2)
