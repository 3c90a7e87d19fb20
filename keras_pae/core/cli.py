"""The command-line boundary every `keras-pae` command goes through.

A command is a parser and a function of the parsed flags. `main` parses,
quiets TensorFlow, runs the function and turns what a user can get wrong into
one line: a `ValueError` or `FileNotFoundError` prints `prog: error: ...` and
exits 2, an interrupt prints how to resume and exits 130. A bug still shows
its traceback.
"""

import argparse
import dataclasses
import os
import sys

RESUME_HINT = "rerun the same command to resume."


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line (no usage dump)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def quiet_environment():
    """Quieter TensorFlow logs and off-screen pygame, unless the user set them (before TensorFlow loads)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")


def fit_verbosity(verbose):
    """`fit`'s verbosity for `verbose`: "auto" is a progress bar on a terminal, one line per epoch otherwise."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return verbose


def run_command(prog, command, resume_hint=RESUME_HINT):
    """Runs `command()` behind the project's error boundary; returns the exit status.

    A ValueError or FileNotFoundError (a bad flag, missing data, an offline
    download) prints `prog: error: ...` in one line and returns 2; an
    interrupt prints `resume_hint` and returns 130; otherwise `command`'s
    return value, or 0 for None.
    """
    try:
        status = command()
    except (ValueError, FileNotFoundError) as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; {resume_hint}", file=sys.stderr)
        return 130
    return 0 if status is None else status


def main(parser, run, argv=None, resume_hint=RESUME_HINT):
    """Parses `argv` with `parser` and runs `run(args)` behind `run_command`; returns the exit status."""
    args = parser.parse_args(argv)
    quiet_environment()
    return run_command(parser.prog, lambda: run(args), resume_hint)


def config_from_args(config_class, args, **values):
    """A `config_class` dataclass filled from the parsed flags of the same names.

    Fields with no flag keep their defaults; `values` sets fields whose flag
    differs (e.g. `deterministic=not args.nondeterministic`).
    """
    flags = vars(args)
    for field in dataclasses.fields(config_class):
        if field.name not in values and field.name in flags:
            values[field.name] = flags[field.name]
    return config_class(**values)
