"""`python -m keras_pae.ssavae`: both phases of the adversarial VAE, resumable.

Flags fill an `AdversarialVAEConfig`; errors a user can cause print one line
and exit with status 2. Rerunning with the same flags skips finished phases
and resumes an interrupted one.
"""

import sys

from keras_pae.core import cli
from keras_pae.ssavae.config import SSAVAE_DATASETS, AdversarialVAEConfig

PROG = "python -m keras_pae.ssavae"


def _floats(text):
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated numbers; got {text!r}") from None
    if not values:
        raise ValueError(f"expected comma-separated numbers; got {text!r}")
    return values


def build_parser(prog=PROG):
    d = AdversarialVAEConfig()
    parser = cli.OneLineParser(
        prog=prog,
        description="Two-phase semi-supervised adversarial VAE: train the encoder + classifier, then "
        "decoders against the frozen encoder's features, a discriminator and the classifier.",
    )
    add = parser.add_argument
    add("--dataset", default=d.dataset, help=f"one of {', '.join(SSAVAE_DATASETS)} (default: %(default)s)")
    add("--latent-dim", type=int, default=d.latent_dim, help="K_z (default: %(default)s)")
    add("--epochs", type=int, default=d.epochs, help="phase-1 epochs (default: %(default)s)")
    add("--decoder-epochs", type=int, default=None, help="phase-2 epochs of each decoder (default: --epochs)")
    add("--batch-size", type=int, default=d.batch_size, help="(default: %(default)s)")
    add("--learning-rate", type=float, default=d.learning_rate, help="Adam rate of encoder/classifier and decoders (default: %(default)s)")
    add("--d-learning-rate", type=float, default=d.d_learning_rate, help="Adam rate of the discriminators (default: %(default)s)")
    add("--kl-weight", type=float, default=d.kl_weight, help="phase-1 KL weight; the paper's 1 collapses K_z = 2 (default: %(default)s)")
    add("--kl-warmup-epochs", type=float, default=d.kl_warmup_epochs, help="epochs over which the KL weight ramps up from 0 (default: %(default)s)")
    add("--labelled-fraction", type=float, default=d.labelled_fraction,
        help="share of training images whose labels phase 1 uses; the rest add the KL only (default: %(default)s)")
    add("--beta", type=float, default=d.beta, help="adversarial weight of the decoder used for generation (default: %(default)s)")
    add("--gamma", type=float, default=d.gamma, help="latent weight of the decoder used for generation (default: %(default)s)")
    add("--betas", type=_floats, default=d.betas, help="β sweep of the reconstruction figure, comma-separated (default: 0,0.005,0.1)")
    add("--gammas", type=_floats, default=d.gammas, help="γ values of the sweep, comma-separated (default: 0,0.1)")
    add("--n-dis", type=int, default=d.n_dis, help="discriminator updates per decoder update (default: %(default)s)")
    add("--alphas", type=_floats, default=d.alphas, help="weights of the 3 feature layers (default: 1,0.1,0.01)")
    add("--width", type=int, default=d.width, help="channels of the first convolutions (default: %(default)s)")
    add("--hidden", type=int, default=d.hidden, help="units of the dense layers (default: %(default)s)")
    add("--limit", type=int, default=None, help="use only the first N training and test images (quick runs)")
    add("--data-dir", default=None, help="folder with the dataset's local files (see `keras-pae data NAME --info`)")
    add("--seed", type=int, default=d.seed, help="(default: %(default)s)")
    add("--out", default=None, help="run directory (default: saved_models/ssavae_<dataset>_kz<K_z>)")
    add("--overwrite", action="store_true", help="delete an earlier run in --out first")
    return parser


def run(args):
    """Trains (or resumes) both phases the flags describe."""
    config = cli.config_from_args(AdversarialVAEConfig, args).validate()
    # TensorFlow loads only once the flags are known to be good.
    from keras_pae.ssavae import run as ssavae_run

    ssavae_run.run(config, overwrite=args.overwrite)


def main(argv=None, prog=PROG):
    return cli.main(build_parser(prog), run, argv)


if __name__ == "__main__":
    sys.exit(main())
