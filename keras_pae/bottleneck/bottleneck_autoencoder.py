"""The model of the bottleneck study: a CAE trained with MSE."""

import keras
from keras import ops

from keras_pae.core import losses
from keras_pae.bottleneck import networks


@keras.saving.register_keras_serializable(package="keras_pae")
class BottleneckAutoencoder(keras.Model):
    """A convolutional autoencoder whose bottleneck shape is the variable.

    Bottleneck paper, Sections 2.2 and 3: pixel-wise MSE, one loss
    tracker, so `fit`'s history has `loss` and (on validation data)
    `val_loss` after every epoch. The embedding is the bottleneck code.

    Args:
        encoder: model mapping images to the bottleneck code (N, h, w, c).
        decoder: model mapping the code back to images.
        size: bottleneck size 1, 2 or 3 (recorded for reports).
        compression: bottleneck volume / input volume, e.g. `"1/16"`.
    """

    def __init__(self, encoder, decoder, size=None, compression=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.decoder = decoder
        self.size = size
        self.compression = None if compression is None else str(networks.parse_compression(compression))
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    @property
    def image_shape(self):
        return tuple(self.encoder.input_shape[1:])

    @property
    def code_shape(self):
        return tuple(self.encoder.output_shape[1:])

    def call(self, images, training=False):
        return self.decoder(self.encoder(images, training=training), training=training)

    def compute_loss_value(self, images, training=False):
        return losses.pixel_loss(images, self(images, training=training))

    def train_step(self, data):
        import tensorflow as tf

        images = data[0] if isinstance(data, tuple) else data
        with tf.GradientTape() as tape:
            loss = self.compute_loss_value(images, training=True)
        self.optimizer.apply(tape.gradient(loss, self.trainable_weights), self.trainable_weights)
        self.loss_tracker.update_state(loss)
        return {"loss": self.loss_tracker.result()}

    def test_step(self, data):
        images = data[0] if isinstance(data, tuple) else data
        self.loss_tracker.update_state(self.compute_loss_value(images))
        return {"loss": self.loss_tracker.result()}

    def embedding_model(self):
        """A functional model mapping images to bottleneck codes (for export)."""
        inputs = keras.Input(self.image_shape, name="images")
        return keras.Model(inputs, self.encoder(inputs), name="embedder")

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            size=self.size,
            compression=self.compression,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def build_bottleneck_autoencoder(image_shape, size, compression, residual_blocks=2):
    """Builds and calls the CAE of one (size, compression) configuration.

    Args:
        image_shape: (H, W, C), sides multiples of 32.
        size: bottleneck size 1, 2 or 3.
        compression: bottleneck volume / input volume, one of `COMPRESSIONS`
            or any fraction giving whole channels.
        residual_blocks: residual blocks after each conv (the paper: 2).
    """
    image_shape = tuple(int(v) for v in image_shape)
    model = BottleneckAutoencoder(
        networks.bottleneck_encoder(image_shape, size, compression, residual_blocks),
        networks.bottleneck_decoder(image_shape, size, compression, residual_blocks),
        size=size,
        compression=compression,
        name=f"cae_s{size}_c{str(networks.parse_compression(compression)).replace('/', '-')}",
    )
    model(ops.zeros((1, *image_shape)))  # builds the model (BackupAndRestore needs it)
    return model
