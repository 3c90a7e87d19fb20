"""`python -m keras_pae.bottleneck`: the bottleneck study on one dataset (bottleneck paper, Sec. 3)."""

import os
import sys

# Before numpy loads OpenBLAS: the probes' many small products run 100x slower
# when its threads spin against TensorFlow's (and other jobs') on a few cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from keras_pae.bottleneck.geometry import COMPRESSIONS, SIZES  # noqa: E402
from keras_pae.bottleneck.study import StudyConfig, run_study  # noqa: E402
from keras_pae.core import cli  # noqa: E402


def _list(kind):
    def parse(text):
        return tuple(kind(v) for v in text.split(",") if v.strip())

    return parse


def build_parser(prog="python -m keras_pae.bottleneck"):
    defaults = StudyConfig()
    parser = cli.OneLineParser(
        prog=prog,
        description="Train a CAE for every (bottleneck size, compression) pair from one seed, then "
        "compare their losses, reconstructions, linear-probe transfer and SVCCA. Rerunning with the "
        "same flags skips finished configurations and resumes an interrupted one.",
    )
    parser.add_argument("--dataset", default=defaults.dataset, help="data registry name (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="epochs per configuration (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N training images")
    parser.add_argument("--test-limit", type=int, default=defaults.test_limit, help="test images (default: %(default)s)")
    parser.add_argument("--probe-limit", type=int, default=defaults.probe_limit, help="images per part for transfer and SVCCA (default: %(default)s)")
    parser.add_argument("--image-size", type=int, default=defaults.image_size, help="pad/crop side, a multiple of 32 (default: %(default)s)")
    parser.add_argument("--sizes", type=_list(int), default=defaults.sizes, help=f"bottleneck sizes (default: {','.join(map(str, SIZES))})")
    parser.add_argument("--compressions", type=_list(str), default=defaults.compressions, help=f"compression levels (default: {','.join(COMPRESSIONS)})")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="(default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="Adam learning rate (default: %(default)s)")
    parser.add_argument("--residual-blocks", type=int, default=defaults.residual_blocks, help="residual blocks per layer (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="(default: %(default)s)")
    parser.add_argument("--data-dir", default=None, help="folder with the dataset's local files")
    parser.add_argument("--no-export", action="store_true", help="do not export each encoder as a SavedModel")
    parser.add_argument("--nondeterministic", action="store_true", help="allow nondeterministic TensorFlow ops")
    parser.add_argument("--out", default=None, help="output directory (default: saved_models/bottleneck_<dataset>_s<seed>)")
    parser.add_argument("--overwrite", action="store_true", help="discard a study in --out made with different flags")
    return parser


def run(args):
    """Runs the study the flags describe and prints its headline."""
    config = cli.config_from_args(
        StudyConfig, args, export=not args.no_export, deterministic=not args.nondeterministic
    ).validate()
    summary = run_study(config, overwrite=args.overwrite)
    print(f"Wrote {os.path.abspath(config.output_dir)} (report.md, results.csv, figures).")
    findings = summary["findings"]
    if len(findings["above_mean_image_loss"]) == len(config.configurations()):
        print("No configuration is below the mean image's test loss yet: train longer to compare them.")
    elif "size_matters_more_than_channels" in findings:
        print(
            "Size matters more than channels: "
            f"{'yes' if findings['size_matters_more_than_channels'] else 'no'} (log test-loss spread "
            f"{findings['log_test_loss_range_across_sizes']:.3f} across sizes vs "
            f"{findings['log_test_loss_range_across_channels']:.3f} across channels)."
        )


def main(argv=None, prog="python -m keras_pae.bottleneck"):
    return cli.main(build_parser(prog), run, argv)


if __name__ == "__main__":
    sys.exit(main())
