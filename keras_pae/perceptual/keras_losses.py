"""The PS and FP losses as `keras.losses.Loss` objects, for any Keras model's `compile`.

Feature-prediction paper, Eq. 2 (PS) and Eq. 3 (FP); perceptual-loss paper,
Sec. III. The arithmetic is `keras_pae.core.losses`; these classes add the
loss network (by name, weights path or as a model), the images' value range,
and Keras's per-example reduction, so sample weights and `fit`'s averaging
work as with any Keras loss. `PerceptualAutoencoder` computes its PS and FP
terms through the same classes, from the batch's loss-network features
(`from_features`), which may come from the feature cache.
"""

import os

import keras
import numpy as np
from keras import ops

from keras_pae.core import losses
from keras_pae.core.devices import dtype_policy
from keras_pae.perceptual.loss_network import WEIGHT_CHOICES, alexnet_features

# Images may stray this share of `value_range`'s width outside it (float
# rounding, interpolation) before the range check refuses them.
RANGE_TOLERANCE = 1e-3


class LossNetworkLoss(keras.losses.Loss):
    """Base of the losses computed on the loss network's features of images.

    Args:
        loss_network: `"imagenet"`, `"fashion_mnist"`, `"random"` or a weights
            path (see `keras_pae.alexnet_features`; the network is built for
            any image size), or a Keras model mapping images in [0, 1] to
            features.
        value_range: `(low, high)` of the images the loss receives; they are
            mapped linearly onto the [0, 1] the loss network reads, so
            `(0, 255)` and `(-1, 1)` images need no rescaling first. Target
            images outside the range raise an error.
        imagenet_normalize: with a named network, normalise its input with
            ImageNet's mean and standard deviation (off in the authors' code).
        reduction, name, dtype: as `keras.losses.Loss`.
    """

    def __init__(
        self,
        loss_network="imagenet",
        value_range=(0, 1),
        imagenet_normalize=False,
        reduction="sum_over_batch_size",
        name=None,
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        try:
            low, high = (float(v) for v in value_range)
        except (TypeError, ValueError):
            raise ValueError(f"value_range must be two numbers (low, high); got {value_range!r}.") from None
        if not high > low:
            raise ValueError(f"value_range must have low < high; got {value_range!r}.")
        self.value_range = (low, high)
        self.imagenet_normalize = bool(imagenet_normalize)
        if isinstance(loss_network, keras.layers.Layer):
            if imagenet_normalize:
                raise ValueError(
                    "imagenet_normalize applies to a loss network given by name or weights path; "
                    "a model passed in normalises its input itself."
                )
            self._named_network = None
        elif isinstance(loss_network, (str, os.PathLike)):
            self._named_network = os.fspath(loss_network)
            # The frozen network stays float32 under a mixed dtype policy.
            with dtype_policy("float32"):
                loss_network = alexnet_features(
                    (None, None, 3), weights=self._named_network, imagenet_normalize=self.imagenet_normalize
                )
        else:
            raise ValueError(
                f"loss_network must be one of {', '.join(repr(c) for c in WEIGHT_CHOICES)}, a weights path "
                f"or a Keras model; got {loss_network!r}."
            )
        self.loss_network = loss_network

    def to_network_input(self, images):
        """Images in `value_range` with 1 or 3 channels -> RGB images in [0, 1], as the loss network reads them."""
        channels = images.shape[-1]
        if channels not in (1, 3):
            raise ValueError(
                f"{self.name} takes images of shape (N, H, W, 1 or 3); got shape {tuple(images.shape)}."
            )
        low, high = self.value_range
        if (low, high) != (0.0, 1.0):
            images = (images - low) / (high - low)
        if channels == 1:
            images = ops.repeat(images, 3, axis=-1)
        return images

    def check_range(self, images):
        """Returns `images`, refusing them when they lie outside `value_range`.

        A ValueError when eager; inside a compiled step an `InvalidArgumentError`
        with the same message (XLA drops the check).
        """
        import tensorflow as tf

        low, high = self.value_range
        margin = RANGE_TOLERANCE * (high - low)
        message = (
            f"{self.name}: images outside value_range=({low:g}, {high:g}); state their range, "
            "e.g. value_range=(0, 255) or (-1, 1)."
        )
        lowest, highest = ops.min(images), ops.max(images)
        if tf.executing_eagerly():
            if float(lowest) < low - margin or float(highest) > high + margin:
                raise ValueError(f"{message} Got values in [{float(lowest):g}, {float(highest):g}].")
            return images
        inside = ops.logical_and(lowest >= low - margin, highest <= high + margin)
        check = tf.debugging.Assert(inside, [message, "min, max:", lowest, highest])
        with tf.control_dependencies([check]):
            return tf.identity(images)

    def features(self, images):
        """p(images), flattened to (N, features): images in `value_range`, checked."""
        features = self.loss_network(self.to_network_input(self.check_range(images)), training=False)
        return ops.reshape(features, (ops.shape(features)[0], -1))

    def get_config(self):
        config = super().get_config()
        config.update(
            loss_network=(
                self._named_network
                if self._named_network is not None
                else keras.saving.serialize_keras_object(self.loss_network)
            ),
            value_range=list(self.value_range),
            imagenet_normalize=self.imagenet_normalize,
            dtype=self._dtype_policy.name,
        )
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**deserialize_loss_network(config))


def deserialize_loss_network(config):
    """`config` with a serialised loss-network model (not a name or path) rebuilt."""
    config = dict(config)
    if isinstance(config.get("loss_network"), dict):
        config["loss_network"] = keras.saving.deserialize_keras_object(config["loss_network"])
    return config


@keras.saving.register_keras_serializable(package="keras_pae")
class PerceptualLoss(LossNetworkLoss):
    """PS loss: the mean squared error between the loss network's features of two images.

    Feature-prediction paper, Eq. 2; perceptual-loss paper, Sec. III.
    `y_true` and `y_pred` are images (N, H, W, C), C = 1 (repeated to RGB) or 3,
    in `value_range`; per image the loss is the mean over features of
    (p(y_true) - p(y_pred))^2, and `reduction` averages it over the batch.
    Only `y_true` is range-checked: a decoder's output may stray outside the
    range while it trains, and is fed as it is. The gradient reaches `y_pred`
    through the frozen loss network, whose weights are not the model's.

    Args:
        loss_network: a weights name or path, or a Keras model (see `LossNetworkLoss`).
        value_range: `(low, high)` of the images.
        imagenet_normalize: ImageNet normalisation of a named network's input.
        reduction, name, dtype: as `keras.losses.Loss`.
    """

    def __init__(
        self,
        loss_network="imagenet",
        value_range=(0, 1),
        imagenet_normalize=False,
        reduction="sum_over_batch_size",
        name="perceptual_loss",
        dtype=None,
    ):
        super().__init__(loss_network, value_range, imagenet_normalize, reduction, name, dtype)

    def call(self, y_true, y_pred):
        return self.from_features(self.features(y_true), y_pred, per_example=True)

    def from_features(self, true_features, y_pred, per_example=False):
        """The loss given p(y_true) already computed (e.g. cached), flattened or not.

        Args:
            true_features: the loss network's features of the target images.
            y_pred: the images to compare, in `value_range`.
            per_example: one value per image instead of the batch mean.
        """
        return losses.perceptual_loss(
            self.loss_network, None, self.to_network_input(y_pred), image_features=true_features,
            per_example=per_example,
        )


@keras.saving.register_keras_serializable(package="keras_pae")
class FeaturePredictionLoss(LossNetworkLoss):
    """FP loss: the mean squared error between the loss network's features of an image and a prediction of them.

    Feature-prediction paper, Eq. 3. `y_true` are images (N, H, W, C), C = 1
    or 3, in `value_range` (range-checked); `y_pred` are the predicted
    features, flattened (N, h * w * 192) or as the loss network gives them
    (N, h, w, 192), compared in row-major order. Per image the loss is the
    mean over features of (p(y_true) - y_pred)^2.

    Args:
        loss_network: a weights name or path, or a Keras model (see `LossNetworkLoss`).
        value_range: `(low, high)` of the images.
        imagenet_normalize: ImageNet normalisation of a named network's input.
        reduction, name, dtype: as `keras.losses.Loss`.
    """

    def __init__(
        self,
        loss_network="imagenet",
        value_range=(0, 1),
        imagenet_normalize=False,
        reduction="sum_over_batch_size",
        name="feature_prediction_loss",
        dtype=None,
    ):
        super().__init__(loss_network, value_range, imagenet_normalize, reduction, name, dtype)

    def call(self, y_true, y_pred):
        return self.from_features(self.features(y_true), y_pred, per_example=True)

    def from_features(self, true_features, y_pred, per_example=False):
        """The loss given p(y_true) already computed (e.g. cached), flattened or not.

        Args:
            true_features: the loss network's features of the target images.
            y_pred: the predicted features.
            per_example: one value per image instead of the batch mean.
        """
        wanted, got = _feature_count(true_features.shape), _feature_count(y_pred.shape)
        if wanted is not None and got is not None and wanted != got:
            raise ValueError(
                f"{self.name}: y_pred holds {got} features per example, the loss network gives {wanted} "
                f"for these images (y_pred shape {tuple(y_pred.shape)})."
            )
        return losses.feature_prediction_loss(true_features, y_pred, per_example=per_example)


def _feature_count(shape):
    """Features per example of a (N, ...) shape, None when a side is unknown."""
    sides = tuple(shape[1:])
    return None if any(side is None for side in sides) else int(np.prod(sides))
