"""The trained encoder of a finished run, as a Keras model to serve or fine-tune.

Every run writes `encoder.keras` (`keras_pae.core.runs.save_encoder`): a
`train` run in its directory, each configuration of the bottleneck study in
`runs/<name>/`, the adversarial VAE in `phase1/`. It maps images in [0, 1]
to the embedding: mu for the perceptual autoencoders and the adversarial
VAE's encoder, the bottleneck code for the CAE study. An F-* encoder holds
the loss network, frozen.

This module sits above the paper packages because the loader must know every
custom layer an encoder may contain: importing it registers them (Keras
finds a custom class by its registered name only), after which
`keras.saving.load_model` reads the file as well.
"""

import os

import keras

from keras_pae.core.runs import ENCODER_FILE
# Registration only: the encoders' custom layers (space-to-depth Conv2D in the
# loss network, the image encoder's patch Conv2D, FusedBatchNormalization, the
# sub-pixel Conv2DTranspose).
from keras_pae.perceptual import alexnet, conv_transpose, fused_batch_normalization, patch_conv  # noqa: F401


def load_encoder(run_dir, trainable=True):
    """The encoder a finished run wrote: a Keras model from images in [0, 1] to the embedding.

    Args:
        run_dir: a finished run directory holding `encoder.keras` (a `train`
            run, a bottleneck study's `runs/<name>`, an adversarial VAE's
            `phase1`), or the `.keras` file itself.
        trainable: True returns the encoder as it trained, to fine-tune (an
            F-* encoder's loss network stays frozen, as in training); False
            freezes every layer, batch normalisation included (a fixed
            feature extractor).
    """
    path = os.fspath(run_dir)
    if not path.endswith(".keras"):
        path = os.path.join(path, ENCODER_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} not found: pass a finished run directory that holds {ENCODER_FILE} (a train run, a "
            "bottleneck study's runs/<name>, an adversarial VAE's phase1) or the file itself; runs finished "
            f"before {ENCODER_FILE} was written hold only the encoder/ SavedModel."
        )
    encoder = keras.saving.load_model(path, compile=False)
    if not trainable:
        encoder.trainable = False
    return encoder
