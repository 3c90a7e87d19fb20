"""The experiment configuration: one dataclass, filled by the CLI, saved as JSON.

Importing this module is cheap (no TensorFlow), so bad flags fail fast.
"""

import dataclasses
import os
from typing import Optional

from keras_pae.core.config import JsonConfig
from keras_pae.data.registry import DATASETS
from keras_pae.perceptual.procedures import Procedure, check_image_size

# Keep in step with keras_pae.perceptual.loss_network.WEIGHT_CHOICES (which imports TensorFlow).
NAMED_LOSS_WEIGHTS = ("imagenet", "fashion_mnist", "random")
# "mlps": the feature-prediction paper's seven MLPs; "tuner": the first
# paper's KerasTuner space (tuning/).
PREDICTOR_SEARCHES = ("mlps", "tuner")
# "auto": cache p(X) of the training images once when the procedure uses the
# loss network (measured faster for all five, see docs/performance.md).
FEATURE_CACHES = ("auto", "off")
# "mirrored": tf.distribute.MirroredStrategy over the GPUs (or the logical CPUs).
DISTRIBUTE_CHOICES = ("none", "mirrored")
# "torch": what the authors' PyTorch code does by default; "keras": Keras's defaults.
INITS = ("torch", "keras")
# Keep in step with keras_pae.core.optimizers.ADAMS (which imports Keras).
ADAMS = ("torch", "keras")


@dataclasses.dataclass
class TrainConfig(JsonConfig):
    """Everything that determines one autoencoder training run.

    Defaults follow the feature-prediction paper (Section VI) and the
    authors' code: Adam 1e-3, batch 512, up to 50 epochs, the last 20% of the
    autoencoder data as validation, early stopping with patience
    max(10, epochs / 20), the best-validation epoch kept.

    Args:
        dataset: data registry name (see `DATASETS`).
        procedure: one of the six procedure names, e.g. `"I-F-FP"`.
        z_dim: size of the latent space (the paper: 64, 128, 256).
        gamma: KL weight; 0 is a plain autoencoder.
        epochs: maximum number of epochs.
        batch_size: images per step.
        learning_rate: Adam's learning rate.
        init: `"torch"` initialises the encoder and decoder as the authors'
            PyTorch layers are by default (uniform in +-1/sqrt(fan_in)),
            `"keras"` with Keras's defaults (Glorot uniform, zero biases).
        adam: `"torch"` is PyTorch's Adam, the authors' (epsilon 1e-8 added to
            the bias-corrected sqrt(v)); `"keras"` is Keras's (1e-7 added to
            sqrt(v)). They differ for the PS loss, whose gradients are about
            as small as epsilon (see `keras_pae.core.optimizers`).
        loss_weights: `"imagenet"`, `"random"` or a weights file path.
        imagenet_normalize: feed ImageNet-normalised images to the loss network.
        seed: seeds data order, initialisation and sampling.
        data_seed: seeds data generation (LunarLander), kept apart from `seed`
            so repetitions train on the same collection.
        limit: quick runs: use only the first `limit` images of each part
            (LunarLander: the rollouts `limit` autoencoder frames need, per run).
        image_size: side of the square images the models see (64 + 16n);
            None uses the dataset's (`DatasetInfo.image_size`).
        validation_fraction: trailing fraction of the data used for validation.
        patience: early-stopping patience; None means max(10, epochs / 20).
        rollouts: LunarLander rollouts of the autoencoder run.
        predictor_rollouts: LunarLander rollouts of the predictor run (None: as
            many as the autoencoder run uses, so `limit` shrinks it too).
        test_rollouts: LunarLander rollouts of the test run (None: likewise).
        data_dir: folder with a dataset's local files (IDX .gz, SVHN .mat,
            STL-10 .bin, ...); None uses tensorflow-datasets (or Debian's
            Fashion-MNIST folder).
        steps: LunarLander steps per rollout.
        reset_on_termination: LunarLander: start a new episode when one ends
            (False follows the authors' script, which kept stepping it).
        predictor_epochs: maximum epochs of each embedding predictor;
            0 skips the evaluation.
        predictor_search: `"mlps"` (the seven MLPs of the feature-prediction
            paper) or `"tuner"` (the first paper's space, searched with KerasTuner).
        predictor_trials: with `"tuner"`, stop after this many trials (None:
            the whole space).
        deterministic: make TensorFlow ops deterministic (same seed, same losses).
        feature_cache: `"auto"` computes the loss network's features of the
            training images once (float16, memory-mapped, in the run's staging
            directory) for every procedure but I-I-PW; `"off"` recomputes
            them at every step.
        jit_compile: compile the train step with XLA (measured slower on
            this project's CPU; try it per device).
        mixed_precision: train under `mixed_float16` on a GPU or
            `mixed_bfloat16` on a CPU with bfloat16 instructions, the loss
            network and the losses in float32; refused on other CPUs.
        distribute: `"none"` or `"mirrored"` (one model replicated over the
            GPUs, or the logical CPU devices, each taking a share of the batch).
        out: output directory; None picks one under `saved_models/`.
    """

    dataset: str = "lunarlander"
    procedure: str = "I-F-FP"
    z_dim: int = 64
    gamma: float = 0.0
    epochs: int = 50
    batch_size: int = 512
    learning_rate: float = 1e-3
    init: str = "torch"
    adam: str = "torch"
    loss_weights: str = "imagenet"
    imagenet_normalize: bool = False
    seed: int = 0
    data_seed: int = 0
    limit: Optional[int] = None
    image_size: Optional[int] = None
    validation_fraction: float = 0.2
    patience: Optional[int] = None
    rollouts: int = 700
    predictor_rollouts: Optional[int] = None
    test_rollouts: Optional[int] = None
    steps: int = 150
    reset_on_termination: bool = False
    data_dir: Optional[str] = None
    predictor_epochs: int = 500
    predictor_search: str = "mlps"
    predictor_trials: Optional[int] = None
    deterministic: bool = True
    feature_cache: str = "auto"
    jit_compile: bool = False
    mixed_precision: bool = False
    distribute: str = "none"
    out: Optional[str] = None

    def validate(self):
        """Raises a ValueError / FileNotFoundError naming a bad value."""
        self.procedure = Procedure.parse(self.procedure).name
        if self.dataset not in DATASETS:
            raise ValueError(
                f"Unknown dataset {self.dataset!r}; valid datasets are {', '.join(DATASETS)}."
            )
        if self.data_dir is not None and not os.path.isdir(self.data_dir):
            raise FileNotFoundError(f"--data-dir {self.data_dir!r} is not a directory.")
        for name in ("z_dim", "epochs", "batch_size", "rollouts", "steps"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        for name in ("limit", "patience", "predictor_rollouts", "test_rollouts", "predictor_trials"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer or unset; got {value!r}.")
        if not isinstance(self.predictor_epochs, int) or self.predictor_epochs < 0:
            raise ValueError(
                f"predictor_epochs must be a non-negative integer (0 skips the predictors); got {self.predictor_epochs!r}."
            )
        if self.predictor_search not in PREDICTOR_SEARCHES:
            raise ValueError(
                f"Unknown predictor search {self.predictor_search!r}; valid ones are {', '.join(PREDICTOR_SEARCHES)}."
            )
        for name, valid in (
            ("feature_cache", FEATURE_CACHES), ("distribute", DISTRIBUTE_CHOICES), ("init", INITS), ("adam", ADAMS)
        ):
            if getattr(self, name) not in valid:
                raise ValueError(f"Unknown {name} {getattr(self, name)!r}; valid values are {', '.join(valid)}.")
        if self.gamma < 0:
            raise ValueError(f"gamma must be >= 0 (0 = plain autoencoder); got {self.gamma}.")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0; got {self.learning_rate}.")
        if not 0 < self.validation_fraction < 1:
            raise ValueError(
                f"validation_fraction must lie in (0, 1); got {self.validation_fraction}."
            )
        if self.reset_on_termination and self.dataset != "lunarlander":
            raise ValueError("--reset-on-termination applies to --dataset lunarlander only.")
        if self.image_size is None:
            self.image_size = DATASETS[self.dataset].image_size
        check_image_size(self.image_size, self.image_size)
        if self.loss_weights not in NAMED_LOSS_WEIGHTS and not os.path.isfile(self.loss_weights):
            raise FileNotFoundError(
                f"Loss-network weights {self.loss_weights!r} are neither "
                f"{' nor '.join(repr(w) for w in NAMED_LOSS_WEIGHTS)} nor an existing "
                ".pth / .weights.h5 file."
            )
        if self.loss_weights.endswith(".h5"):
            import h5py  # light; catches a broken file before TensorFlow loads

            if not h5py.is_hdf5(self.loss_weights):
                raise ValueError(
                    f"Loss-network weights file {self.loss_weights!r} is not a valid "
                    ".weights.h5 (HDF5) file; convert a checkpoint with "
                    "`python -m keras_pae.perceptual.convert_alexnet SRC.pth DST.weights.h5`."
                )
        return self

    @property
    def early_stopping_patience(self):
        return self.patience or max(10, self.epochs // 20)

    @property
    def run_name(self):
        return f"{self.dataset}_{self.procedure}_z{self.z_dim}_g{self.gamma:g}_s{self.seed}"

    @property
    def output_dir(self):
        return self.out or os.path.join("saved_models", self.run_name)
