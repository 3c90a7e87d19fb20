"""The `keras-pae` console script: every command behind one boundary."""

import importlib
import subprocess
import sys

import pytest

from keras_pae import commands


@pytest.mark.parametrize("name", sorted(commands.COMMANDS))
def test_every_command_has_help_under_its_subcommand_name(name, capsys):
    module = importlib.import_module(commands.COMMANDS[name][0])
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"], prog=f"keras-pae {name}")
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: keras-pae {name}")


def test_usage_lists_every_command(capsys):
    assert commands.main([]) == 2
    listed = capsys.readouterr().out
    assert all(f"  {name} " in listed for name in commands.COMMANDS)
    assert commands.main(["--help"]) == 0


def test_unknown_command_is_one_line(capsys):
    assert commands.main(["trian"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown command 'trian'" in err and "train" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["report", "no/such/run"], "no/such/run has no summary.json"),
        (["search", "no/such/run"], "no/such/run not found"),
        (["convert-alexnet", "missing.pth", "out.weights.h5"], "checkpoint 'missing.pth' not found"),
        (["train", "--procedure", "X-Y-Z"], "X-Y-Z"),
        (["data", "svhn", "--data-dir", "no/such/dir"], "'no/such/dir' is not a directory"),
        (["retrain-decoder", "no/such/run", "--out", "x"], "no/such/run is not a finished train.py run"),
    ],
)
def test_user_errors_are_one_line_with_exit_2(argv, message, capsys):
    assert commands.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"keras-pae {argv[0]}: error: ") and err.count("\n") == 1, err
    assert message in err


def test_python_dash_m_runs_the_same_dispatcher():
    result = subprocess.run(
        [sys.executable, "-m", "keras_pae", "report", "no/such/run"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("keras-pae report: error: no/such/run")
