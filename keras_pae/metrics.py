"""Keras metrics computed on the loss network: `PerceptualDistance`, the mean PS loss.

Importing this module registers them for `keras.saving.load_model`.
"""

from keras_pae.perceptual.perceptual_distance import PerceptualDistance

__all__ = ["PerceptualDistance"]
