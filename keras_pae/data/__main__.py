"""Generate, load or describe data sets: `keras-pae data <dataset> [--info] [options]`.

Each data set is one subcommand, added by a function in `SUBCOMMANDS` that
builds its parser and sets `run` to the function doing the work. `--info`
prints the parts, their sizes and where they would come from, without
downloading or generating anything.
"""

import argparse
import os
import sys

from keras_pae.core import cli
# Light modules (no gymnasium, no TensorFlow at import): --help stays instant.
from keras_pae.data import lunarlander, registry
from keras_pae.data.registry import DATASETS, REGISTRY


def _int_at_least(minimum):
    """An argparse type: an integer >= `minimum`, else a one-line error."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)
_non_negative_int = _int_at_least(0)


def _add_lunarlander(subparsers):
    parser = subparsers.add_parser(
        "lunarlander",
        help="the LunarLander collection (feature-prediction paper, Section III-A)",
        description="Render (or load from the cache) LunarLander runs and report their size.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rollouts", type=_positive_int, default=lunarlander.ROLLOUTS, help="rollouts per run")
    parser.add_argument("--steps", type=_positive_int, default=lunarlander.STEPS, help="frames per rollout")
    parser.add_argument("--image-size", type=_positive_int, default=64, help="side of the square frames")
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="base seed")
    parser.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1, help="worker processes")
    parser.add_argument(
        "--cache-dir",
        default=str(lunarlander.default_cache_dir()),
        help="cache root; runs go under <cache-dir>/lunarlander/ ($KERAS_PAE_CACHE sets the default)",
    )
    parser.add_argument(
        "--runs",
        type=_runs,
        default=",".join(lunarlander.RUNS),
        help=f"comma-separated runs, from {', '.join(lunarlander.RUNS)}",
    )
    parser.add_argument(
        "--reset-on-termination", action="store_true",
        help="start a new episode when one ends (default: keep stepping it, as the authors' script did)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    _add_info(parser)
    parser.set_defaults(run=_run_lunarlander)


def _add_info(parser):
    parser.add_argument(
        "--info", action="store_true",
        help="print the parts, their sizes and where they would come from, then exit (downloads nothing)",
    )


def _runs(text):
    runs = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in runs if name not in lunarlander.RUNS]
    if bad or not runs:
        raise argparse.ArgumentTypeError(
            f"unknown run {', '.join(map(repr, bad)) or repr(text)}; choose from {', '.join(lunarlander.RUNS)}"
        )
    return runs


def _run_lunarlander(args):
    if args.info:
        print(registry.describe("lunarlander"))
        return 0

    # argparse applies `type` to a string default too, so args.runs is always a list.
    for run in args.runs:
        data = lunarlander.generate_run(
            run,
            rollouts=args.rollouts,
            steps=args.steps,
            image_size=args.image_size,
            seed=args.seed,
            workers=args.workers,
            cache_dir=args.cache_dir,
            progress=not args.no_progress,
            reset_on_termination=args.reset_on_termination,
        )
        where = lunarlander.cached_path(
            run, args.rollouts, args.steps, args.image_size, args.seed, cache_dir=args.cache_dir,
            reset_on_termination=args.reset_on_termination,
        )
        print(f"{run}: {len(data)} frames, {int(data.on_screen.sum())} on-screen, cache {where}")
    return 0


def _add_registry_datasets(subparsers):
    """One subcommand per registry data set read from TFDS or local files."""
    for name in DATASETS:
        if name == "lunarlander":
            continue
        entry = REGISTRY[name]
        source = " or ".join(
            ([f"tensorflow-datasets '{entry.tfds.name}'"] if entry.tfds else [])
            + (["local files (--data-dir)"] if entry.local else [])
        )
        parser = subparsers.add_parser(
            name,
            help=f"from {source}",
            description=f"Load {name}'s three parts (downloading through TFDS if needed) and report their size.",
        )
        _add_info(parser)
        parser.add_argument("--data-dir", default=None, help="folder with the data set's local files")
        parser.add_argument("--limit", type=_positive_int, default=None, help="read at most N examples per part")
        parser.set_defaults(run=_run_registry_dataset)


def _run_registry_dataset(args):
    if args.data_dir is not None and not os.path.isdir(args.data_dir):
        raise FileNotFoundError(f"--data-dir {args.data_dir!r} is not a directory.")
    if args.info:
        print(registry.describe(args.dataset, args.data_dir))
        return 0
    for part in registry.PARTS:
        data = registry.load_part(args.dataset, part, args.data_dir, args.limit)
        labels = "unlabelled" if data.labels is None else f"labels {data.labels.shape[1:] or 'class index'}"
        print(f"{part}: {len(data)} images of {'x'.join(map(str, data.images.shape[1:]))} uint8, {labels}")
    return 0


# One function per data set (or family); another is another function appended here.
SUBCOMMANDS = (_add_lunarlander, _add_registry_datasets)


def build_parser(prog="python -m keras_pae.data"):
    """The `keras-pae data` parser, one subcommand per data set."""
    parser = cli.OneLineParser(prog=prog, description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="dataset", metavar="DATASET", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv=None, prog="python -m keras_pae.data"):
    """Runs the command line; returns the exit code."""
    return cli.main(build_parser(prog), lambda args: args.run(args), argv, "rerun the same command; finished runs are cached.")


if __name__ == "__main__":
    sys.exit(main())
