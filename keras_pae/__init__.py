"""keras_pae: pretrain image encoders with perceptual and feature-prediction losses.

The public names are imported lazily so that light modules (the LunarLander
generator's spawned workers, `python -m keras_pae.data --help`) do not pay for
importing TensorFlow. For the same reason `import keras_pae` alone registers
none of the package's Keras objects: `keras.saving.load_model` of a file that
holds them needs the module defining them imported first (`keras_pae.losses`,
`keras_pae.metrics`, `keras_pae.encoders`; `keras_pae.load_encoder` does it).
"""

import importlib
import os
import sys
import warnings

# oneDNN's kernels for convolutions, dense layers and batch norm. TensorFlow
# turns them on by itself only on some CPUs; on the AVX2 CPU measured, its
# default Eigen kernels trained 2-4x slower (docs/performance.md). Read when
# TensorFlow loads, so it takes effect when keras_pae is imported first; a
# user's own setting wins.
if "TF_ENABLE_ONEDNN_OPTS" not in os.environ and "tensorflow" in sys.modules:
    # A script that imported TensorFlow (or Keras) first trains with other kernels: slower, other numbers.
    warnings.warn(
        "TensorFlow was imported before keras_pae, so keras_pae could not turn on oneDNN's kernels: "
        "on CPUs where TensorFlow leaves them off (AVX2 ones among them) training runs 2-4x slower and "
        "gives other numbers. Import keras_pae first, or set TF_ENABLE_ONEDNN_OPTS=1 in the environment.",
        stacklevel=2,
    )
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

_PUBLIC = {
    "alexnet_features": "keras_pae.perceptual.loss_network",
    "Procedure": "keras_pae.perceptual.procedures",
    "PROCEDURES": "keras_pae.perceptual.procedures",
    "PerceptualAutoencoder": "keras_pae.perceptual.perceptual_autoencoder",
    "build_perceptual_autoencoder": "keras_pae.perceptual.perceptual_autoencoder",
    "TrainConfig": "keras_pae.perceptual.config",
    "VariationalEncoderClassifier": "keras_pae.ssavae.variational_encoder_classifier",
    "AdversarialDecoder": "keras_pae.ssavae.adversarial_decoder",
    "train": "keras_pae.perceptual.training",
    "load_encoder": "keras_pae.encoders",
}
# Public modules, imported on first use: `keras_pae.losses.PerceptualLoss`.
_MODULES = ("losses", "metrics", "encoders")

__all__ = sorted(_PUBLIC)


def __getattr__(name):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    if name in _MODULES:
        return importlib.import_module(f"keras_pae.{name}")
    raise AttributeError(f"module 'keras_pae' has no attribute {name!r}")
