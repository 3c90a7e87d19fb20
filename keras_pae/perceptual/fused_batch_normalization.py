"""BatchNormalization through TensorFlow's fused kernel, with PyTorch's moving variance as an option.

Keras 3's BatchNormalization computes moments and normalises with separate
element-wise ops; on a CPU the seven BN layers of the conv encoder and decoder
(feature-prediction paper, Figs. 3-4) then cost ~105 ms per step of 128 64x64 images, forward and
backward, against ~32 ms for `FusedBatchNormV3`, a fifth of an I-I-PS step.

Keras and PyTorch normalise a training batch alike (by its biased variance) but
update the moving variance differently: Keras averages the biased batch
variance, PyTorch's `BatchNorm2d` (the authors' layers) the unbiased one, n / (n - 1)
times larger, n being the values per channel (batch x height x width). Inference
(validation losses, hence the epoch kept, and the embeddings) divides by the
moving variance, so the two part there; `unbiased_moving_variance=True` is PyTorch's.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_pae")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` computed by `FusedBatchNormV3`.

    The same weights, arithmetic and moving-statistics update as Keras's
    layer, or PyTorch's moving variance (see the module). Under a mixed
    policy the kernel takes bfloat16 or float16 inputs with the float32
    weights and statistics, as Keras's layer keeps them. It falls back to
    Keras's computation for anything but channels-last 4-D float32, bfloat16 or
    float16 inputs on TensorFlow without a mask or renormalisation.

    Args:
        unbiased_moving_variance: update the moving variance with the unbiased
            (Bessel-corrected) batch variance, as PyTorch's `BatchNorm2d`; False
            is Keras's biased one.
        **kwargs: BatchNormalization's arguments.
    """

    def __init__(self, *args, unbiased_moving_variance=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.unbiased_moving_variance = bool(unbiased_moving_variance)

    def call(self, inputs, training=None, mask=None):
        if (
            keras.backend.backend() != "tensorflow"
            or mask is not None
            or self.renorm
            or len(inputs.shape) != 4
            or self.axis not in (-1, 3)
            or inputs.dtype not in ("float32", "bfloat16", "float16")
        ):
            return self._keras_call(inputs, training, mask)
        import tensorflow as tf

        # The weights and statistics are float32 (Keras never autocasts them).
        channels = inputs.shape[-1]
        gamma = self.gamma if self.scale else tf.ones((channels,))
        beta = self.beta if self.center else tf.zeros((channels,))
        if training and self.trainable:
            outputs, mean, variance, *_ = tf.raw_ops.FusedBatchNormV3(
                x=inputs, scale=gamma, offset=beta, mean=tf.zeros((0,)), variance=tf.zeros((0,)),
                epsilon=self.epsilon, is_training=True,
            )
            if not self.unbiased_moving_variance:
                # The kernel returns the Bessel-corrected variance; Keras averages the biased one.
                count = tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
                variance = variance * (count - 1.0) / count
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(
                self.moving_variance * self.momentum + variance * (1.0 - self.momentum)
            )
            return outputs
        outputs, *_ = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=gamma, offset=beta, mean=ops.convert_to_tensor(self.moving_mean),
            variance=ops.convert_to_tensor(self.moving_variance), epsilon=self.epsilon, is_training=False,
        )
        return outputs

    def _keras_call(self, inputs, training, mask):
        if not (self.unbiased_moving_variance and training and self.trainable):
            return super().call(inputs, training=training, mask=mask)
        if mask is not None:
            raise ValueError("FusedBatchNormalization: unbiased_moving_variance does not take a mask.")
        # Keras's layer adds (1 - momentum) * the biased batch variance; scale that share by n / (n - 1).
        previous = ops.convert_to_tensor(self.moving_variance) * self.momentum
        outputs = super().call(inputs, training=training)
        axis = self.axis % len(inputs.shape)
        count = 1
        for i in range(len(inputs.shape)):
            if i != axis:
                count = count * ops.shape(inputs)[i]
        count = ops.cast(count, self.moving_variance.dtype)
        self.moving_variance.assign(previous + (self.moving_variance - previous) * count / (count - 1.0))
        return outputs

    def get_config(self):
        config = super().get_config()
        config["unbiased_moving_variance"] = self.unbiased_moving_variance
        return config
