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


def test_importing_tensorflow_first_warns_that_onednn_stays_off():
    """keras_pae turns on oneDNN through an environment variable TensorFlow reads as it loads.

    After TensorFlow it is too late: a script importing TensorFlow or Keras first
    trained 2x slower on an AVX2 CPU, with other numbers, and nothing said so.
    """
    import os
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # This process's import of keras_pae has set the variable: the children start without it.
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}

    def stderr(code, **extra):
        done = subprocess.run(
            [sys.executable, "-c", code], env={**env, **extra}, cwd=root, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return done.stderr

    message = "Import keras_pae first"
    assert message in stderr("import tensorflow, keras_pae")
    assert message not in stderr("import keras_pae, tensorflow")
    # A user's own setting is theirs to choose.
    assert message not in stderr("import tensorflow, keras_pae", TF_ENABLE_ONEDNN_OPTS="0")


def test_process_seconds_counts_from_the_process_start(tmp_path):
    """The job's printed wall time includes start-up: here a second's sleep and the imports before the call."""
    import os
    import subprocess
    import sys
    import time

    from keras_pae.core.devices import process_seconds

    # The command name may hold spaces and ")"; field 22 is the start time in clock ticks.
    stat, uptime = tmp_path / "stat", tmp_path / "uptime"
    ticks = os.sysconf("SC_CLK_TCK")
    stat.write_text("4242 (a b) c) S " + " ".join(["7"] * 18) + f" {500 * ticks} " + " ".join(["9"] * 30))
    uptime.write_text("512.50 1000.00\n")
    assert process_seconds(str(stat), str(uptime)) == pytest.approx(12.5)
    assert process_seconds(str(tmp_path / "missing"), str(uptime)) is None

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = "import time; time.sleep(1); from keras_pae.core.devices import process_seconds; print(process_seconds())"
    before = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - before
    assert done.returncode == 0, done.stderr
    seconds = float(done.stdout)
    assert 1.0 <= seconds <= elapsed + 0.02  # a clock tick is 0.01 s
