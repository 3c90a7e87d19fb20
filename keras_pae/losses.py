"""Keras losses computed on the loss network, for any Keras model's `compile`.

`PerceptualLoss` (PS, feature-prediction paper Eq. 2) compares images through
the loss network; `FeaturePredictionLoss` (FP, Eq. 3) compares a model's
predicted features with the loss network's features of the images. Both take
the loss network by name (`"imagenet"`, `"fashion_mnist"`, `"random"`), as a
weights path or as a Keras model, and the images' `value_range`. See
docs/loss-network.md. Importing this module registers them for
`keras.saving.load_model`.
"""

from keras_pae.perceptual.keras_losses import FeaturePredictionLoss, LossNetworkLoss, PerceptualLoss

__all__ = ["FeaturePredictionLoss", "LossNetworkLoss", "PerceptualLoss"]
