"""`train.py`'s command line (`keras-pae train`): flags -> `TrainConfig` -> `training.train`."""

from keras_pae.core import cli
from keras_pae.perceptual.config import (
    ADAMS, DATASETS, DISTRIBUTE_CHOICES, FEATURE_CACHES, INITS, NAMED_LOSS_WEIGHTS, PREDICTOR_SEARCHES, TrainConfig,
)
from keras_pae.perceptual.procedures import PROCEDURES

RESUME_HINT = "continue with the same flags and --resume."


def add_train_arguments(parser, grid_axes=True):
    """Adds the flags of one training run (shared with the experiment grid).

    Args:
        parser: the `ArgumentParser` to extend.
        grid_axes: add `--procedure`, `--z-dim` and `--gamma`, which the
            experiment grid replaces with lists of its own.
    """
    defaults = TrainConfig()
    parser.add_argument("--dataset", default=defaults.dataset, help=f"one of {', '.join(DATASETS)} (default: %(default)s)")
    if grid_axes:
        parser.add_argument("--procedure", default=defaults.procedure, help=f"one of {', '.join(PROCEDURES)} (default: %(default)s)")
        parser.add_argument("--z-dim", type=int, default=defaults.z_dim, help="latent size (default: %(default)s)")
        parser.add_argument("--gamma", type=float, default=defaults.gamma, help="KL weight, 0 = plain autoencoder (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs, help="maximum epochs (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="(default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=defaults.learning_rate, help="Adam learning rate (default: %(default)s)")
    parser.add_argument(
        "--init", choices=INITS, default=defaults.init,
        help="initialisation of the encoder and decoder: torch = the authors' PyTorch defaults, keras = Keras's (default: %(default)s)",
    )
    parser.add_argument(
        "--adam", choices=ADAMS, default=defaults.adam,
        help="Adam's arithmetic: torch = the authors' PyTorch Adam (epsilon 1e-8 on the bias-corrected sqrt(v)), "
        "keras = Keras's (1e-7 on sqrt(v)) (default: %(default)s)",
    )
    parser.add_argument("--patience", type=int, default=None, help="early-stopping patience (default: max(10, epochs/20))")
    parser.add_argument(
        "--loss-weights", default=defaults.loss_weights,
        help=f"loss-network weights: {' | '.join(NAMED_LOSS_WEIGHTS)} | PATH to a torchvision .pth or converted "
        ".weights.h5 (default: %(default)s; 'random' is for smoke tests only)",
    )
    parser.add_argument("--imagenet-normalize", action="store_true", help="feed ImageNet mean/std-normalised images to the loss network")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="training seed (default: %(default)s)")
    parser.add_argument("--data-seed", type=int, default=defaults.data_seed, help="data generation seed (default: %(default)s)")
    parser.add_argument(
        "--limit", type=int, default=None,
        help="quick runs: use only the first N images of each part (LunarLander: the rollouts N frames need, per run)",
    )
    parser.add_argument("--image-size", type=int, default=None, help="image side the models see, 64+16n (default: the dataset's: 96 for stl10 and celeb_a, 112 for omniglot, 128 for pokemon, else 64)")
    parser.add_argument(
        "--data-dir", default=None,
        help="folder with the dataset's local files instead of tensorflow-datasets (IDX .gz, SVHN .mat, stl10_binary/, "
        "cifar-10-batches-py/, caltech101_silhouettes_28_split1.mat, an image folder); "
        "`python -m keras_pae.data NAME --info` lists them",
    )
    parser.add_argument("--rollouts", type=int, default=defaults.rollouts, help="LunarLander rollouts of the autoencoder run (default: %(default)s)")
    parser.add_argument("--predictor-rollouts", type=int, default=None, help="LunarLander rollouts of the predictor run (default: as many as the autoencoder run uses)")
    parser.add_argument("--test-rollouts", type=int, default=None, help="LunarLander rollouts of the test run (default: as many as the autoencoder run uses)")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="LunarLander steps per rollout (default: %(default)s)")
    parser.add_argument(
        "--reset-on-termination", action="store_true",
        help="LunarLander: start a new episode when one ends, instead of stepping the ended one as the authors' script did",
    )
    parser.add_argument("--predictor-epochs", type=int, default=defaults.predictor_epochs, help="max epochs of each embedding predictor; 0 skips them (default: %(default)s)")
    parser.add_argument(
        "--predictor-search", default=defaults.predictor_search, choices=PREDICTOR_SEARCHES,
        help="mlps: the feature-prediction paper's seven MLPs; tuner: the first paper's space with KerasTuner (default: %(default)s)",
    )
    parser.add_argument("--predictor-trials", type=int, default=None, help="with --predictor-search tuner: stop after N trials (default: the whole space)")
    parser.add_argument("--nondeterministic", action="store_true", help="allow nondeterministic (possibly faster) TensorFlow ops")
    parser.add_argument(
        "--feature-cache", default=defaults.feature_cache, choices=FEATURE_CACHES,
        help="auto: compute the loss network's features of the training images once (float16 on disk, in the run's "
        "staging directory) for every procedure but I-I-PW; off: recompute them every step (default: %(default)s)",
    )
    parser.add_argument("--jit-compile", action="store_true", help="compile the train step with XLA (slower on the CPUs measured; see docs/performance.md)")
    parser.add_argument("--mixed-precision", action="store_true", help="mixed_float16 on a GPU, mixed_bfloat16 on a CPU with bfloat16 instructions (loss network and losses stay float32)")
    parser.add_argument(
        "--distribute", default=defaults.distribute, choices=DISTRIBUTE_CHOICES,
        help="mirrored: one model on all GPUs (or logical CPUs) with tf.distribute.MirroredStrategy (default: %(default)s)",
    )
    return parser


def config_from_args(args):
    """The `TrainConfig` of parsed training flags (the grid's axes keep their defaults when absent)."""
    return cli.config_from_args(TrainConfig, args, deterministic=not args.nondeterministic)


def build_parser(prog="train.py"):
    parser = cli.OneLineParser(
        prog=prog,
        description="Pretrain an image encoder with one of the six procedures and export it as a SavedModel.",
    )
    add_train_arguments(parser)
    parser.add_argument("--out", default=None, help="output directory (default: saved_models/<run name>)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted run in <out>.incomplete")
    parser.add_argument("--overwrite", action="store_true", help="replace a finished run / discard an unfinished one")
    return parser


def run(args):
    """Trains the run the flags describe."""
    config = config_from_args(args).validate()
    # TensorFlow loads only once the flags are known to be good.
    from keras_pae.perceptual import training

    training.train(config, resume=args.resume, overwrite=args.overwrite)


def main(argv=None, prog="train.py"):
    return cli.main(build_parser(prog), run, argv, RESUME_HINT)
