"""The adversarial VAE's experiment configuration: a dataclass saved next to its results as JSON.

Importing this module is cheap (no TensorFlow), so bad flags fail fast.
"""

import dataclasses
from typing import Optional

from keras_pae.core.config import JsonConfig
from keras_pae.data.registry import DATASETS

# Section 3.1: the paper's five datasets, all in the data registry.
SSAVAE_DATASETS = ("fashion_mnist", "mnist", "omniglot", "caltech101_silhouettes", "cifar10")


def _phase2_key(beta, gamma):
    return f"decoder_beta{beta:g}_gamma{gamma:g}"


@dataclasses.dataclass
class AdversarialVAEConfig(JsonConfig):
    """Everything that determines one two-phase run (semi-supervised adversarial VAE paper, Sec. 3).

    Args:
        dataset: one of `SSAVAE_DATASETS`.
        latent_dim: K_z (the paper: 2 or 100).
        epochs: phase-1 (encoder + classifier) epochs.
        decoder_epochs: phase-2 epochs of each decoder; None = `epochs`.
        batch_size: images per step.
        learning_rate: Adam's learning rate of the VEC and of the decoders.
        d_learning_rate: Adam's learning rate of the discriminators.
        kl_weight: weight of the KL in phase 1 (the paper: 1, which
            collapses a 2-D latent space; see `VariationalEncoderClassifier`).
        kl_warmup_epochs: epochs over which that weight ramps up from 0.
        labelled_fraction: share of the training images whose labels phase 1
            sees (chosen with `seed`); the others contribute the KL only.
        beta, gamma: the decoder the generation plots use (trained too).
        betas, gammas: the reconstruction sweep (Fig. 9): one decoder per pair.
        n_dis: discriminator updates per decoder update.
        alphas: weights of the three feature layers in L_rec.
        width: channels of the first convolutions (the paper gives none).
        hidden: units of the dense layers.
        limit: use only the first `limit` training (and test) images.
        data_dir: folder with the dataset's local files (see `--data-dir`).
        seed: seeds the label choice, initialisation, data order and sampling.
        out: output directory.
    """

    dataset: str = "fashion_mnist"
    latent_dim: int = 2
    epochs: int = 10
    decoder_epochs: Optional[int] = None
    batch_size: int = 128
    learning_rate: float = 1e-3
    d_learning_rate: float = 1e-4
    kl_weight: float = 0.05
    kl_warmup_epochs: float = 1.0
    labelled_fraction: float = 1.0
    beta: float = 0.005
    gamma: float = 0.1
    betas: tuple = (0.0, 0.005, 0.1)
    gammas: tuple = (0.0, 0.1)
    n_dis: int = 1
    alphas: tuple = (1.0, 0.1, 0.01)
    width: int = 16
    hidden: int = 128
    limit: Optional[int] = None
    data_dir: Optional[str] = None
    seed: int = 0
    out: Optional[str] = None

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        self.gammas = tuple(float(g) for g in self.gammas)
        self.alphas = tuple(float(a) for a in self.alphas)

    @property
    def phase2_epochs(self):
        return self.epochs if self.decoder_epochs is None else self.decoder_epochs

    @property
    def output_dir(self):
        return self.out or f"saved_models/ssavae_{self.dataset}_kz{self.latent_dim}"

    def decoders(self):
        """The (beta, gamma) pairs to train: the sweep, then the chosen one if not in it."""
        pairs = [(b, g) for g in self.gammas for b in self.betas]
        if (self.beta, self.gamma) not in pairs:
            pairs.append((self.beta, self.gamma))
        return pairs

    @staticmethod
    def decoder_key(beta, gamma):
        """The directory name of one phase-2 run."""
        return _phase2_key(beta, gamma)

    def validate(self):
        """Raises a ValueError naming the first bad value; returns self."""
        if self.dataset not in SSAVAE_DATASETS:
            known = "" if self.dataset in DATASETS else " (not in the data registry)"
            raise ValueError(
                f"Unknown dataset {self.dataset!r}{known}; the adversarial VAE runs on {', '.join(SSAVAE_DATASETS)}."
            )
        for name in ("latent_dim", "epochs", "batch_size", "n_dis", "width", "hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name.replace('_', '-')} must be a positive integer; got {getattr(self, name)}.")
        if self.decoder_epochs is not None and self.decoder_epochs < 1:
            raise ValueError(f"decoder-epochs must be a positive integer; got {self.decoder_epochs}.")
        if self.limit is not None and self.limit < 2:
            raise ValueError(f"limit must be at least 2; got {self.limit}.")
        if not 0.0 < self.labelled_fraction <= 1.0:
            raise ValueError(f"labelled-fraction must be in (0, 1]; got {self.labelled_fraction}.")
        if self.kl_weight < 0 or self.kl_warmup_epochs < 0:
            raise ValueError(
                f"kl-weight and kl-warmup-epochs must be >= 0; got {self.kl_weight}, {self.kl_warmup_epochs}."
            )
        for name in ("learning_rate", "d_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name.replace('_', '-')} must be > 0; got {getattr(self, name)}.")
        weights = [("beta", self.beta), ("gamma", self.gamma)]
        weights += [("betas", b) for b in self.betas] + [("gammas", g) for g in self.gammas]
        for name, value in weights:
            if value < 0:
                raise ValueError(f"{name} must be >= 0; got {value}.")
        if not self.betas or not self.gammas:
            raise ValueError("betas and gammas need at least one value each.")
        if len(self.alphas) != 3:
            raise ValueError(f"alphas needs three weights (one per feature layer); got {len(self.alphas)}.")
        return self
