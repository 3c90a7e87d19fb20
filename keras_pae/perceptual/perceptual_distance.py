"""The PS loss as a Keras metric, for reporting next to any loss."""

import keras

from keras_pae.perceptual.keras_losses import PerceptualLoss, deserialize_loss_network


@keras.saving.register_keras_serializable(package="keras_pae")
class PerceptualDistance(keras.metrics.MeanMetricWrapper):
    """The mean `PerceptualLoss` between `y_true` and `y_pred` images over everything seen.

    Feature-prediction paper, Eq. 2, as a metric: e.g. how perceptually close
    a pixel-loss autoencoder's reconstructions are (lower is closer). Images
    are (N, H, W, 1 or 3) in `value_range`; sample weights weigh images.

    Args:
        loss_network: a weights name or path, or a Keras model (see `PerceptualLoss`).
        value_range: `(low, high)` of the images.
        imagenet_normalize: ImageNet normalisation of a named network's input.
        name, dtype: as `keras.metrics.Metric`.
    """

    def __init__(
        self, loss_network="imagenet", value_range=(0, 1), imagenet_normalize=False, name="perceptual_distance",
        dtype=None,
    ):
        # Per image (no reduction): the Mean metric does the averaging and the weighting.
        loss = PerceptualLoss(loss_network, value_range, imagenet_normalize, reduction=None, name=name)
        super().__init__(fn=loss, name=name, dtype=dtype)
        self.perceptual_loss = loss
        self._direction = "down"

    def get_config(self):
        config = {k: v for k, v in self.perceptual_loss.get_config().items() if k not in ("reduction", "dtype")}
        config.update(name=self.name, dtype=self.dtype)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_loss_network(config))
