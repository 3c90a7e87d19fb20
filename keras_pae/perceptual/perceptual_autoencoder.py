"""The model family of papers 1-2: one autoencoder class for all six procedures."""

import keras
from keras import ops

from keras_pae.core import losses
from keras_pae.core.devices import dtype_policy
from keras_pae.perceptual.keras_losses import FeaturePredictionLoss, PerceptualLoss
from keras_pae.perceptual.loss_network import alexnet_features
from keras_pae.perceptual import networks
from keras_pae.perceptual.procedures import Procedure


def _float32_or_wider(x):
    # Losses in float32 under a mixed (float16 / bfloat16) policy; a float64 model stays float64.
    return ops.cast(x, keras.backend.result_type(x.dtype, "float32"))


@keras.saving.register_keras_serializable(package="keras_pae")
class PerceptualAutoencoder(keras.Model):
    """An (optionally variational) autoencoder trained with PW, PS or FP loss.

    Feature-prediction paper, Sections IV-VI; the first paper's AE,
    VAE, P. AE and P. VAE are I-I-PW and I-I-PS with gamma 0 or > 0. The
    encoder reads the image or the loss network's (flattened) features; the
    decoder produces an image or predicts those features. The total loss is
    reconstruction + gamma * KL and each term has its own tracker, so `fit`
    shows every one; PS and FP are `keras_pae.losses.PerceptualLoss` and
    `FeaturePredictionLoss` on the model's loss network. The embedding handed
    to predictors is mu.

    Args:
        encoder: model mapping the encoder input to `[mu, logvar]`.
        decoder: model mapping z to an image or to flattened features.
        loss_network: frozen model mapping images to features; required by
            every procedure but I-I-PW.
        procedure: a procedure name such as `"I-F-FP"` (see `PROCEDURES`).
        gamma: weight of the KL term; 0 gives a plain autoencoder (z = mu).
        seed: seed of the reparameterisation noise.
    """

    def __init__(
        self, encoder, decoder, loss_network=None, procedure="I-I-PW", gamma=0.0, seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.procedure = Procedure.parse(procedure)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0 (0 = plain autoencoder); got {gamma}.")
        if self.procedure.needs_loss_network and loss_network is None:
            raise ValueError(f"Procedure {self.procedure} needs a loss network.")
        self.encoder = encoder
        self.decoder = decoder
        self.loss_network = loss_network
        # The PS or FP term, the same Keras loss a user compiles any model with.
        # Private, so saving walks it after `loss_network`: weight files keep their layout.
        self._feature_loss = None
        if self.procedure.loss == "perceptual":
            self._feature_loss = PerceptualLoss(loss_network, name="reconstruction_loss")
        elif self.procedure.loss == "feature_prediction":
            self._feature_loss = FeaturePredictionLoss(loss_network, name="reconstruction_loss")
        self.gamma = float(gamma)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def variational(self):
        return self.gamma > 0

    @property
    def metrics(self):
        trackers = [self.loss_tracker, self.reconstruction_loss_tracker]
        if self.variational:
            trackers.append(self.kl_loss_tracker)
        return trackers

    @property
    def image_shape(self):
        """(H, W, 3) of the images the model takes."""
        source = self.encoder if self.procedure.encoder == "image" else self.loss_network
        return tuple(source.input_shape[1:])

    def features(self, images):
        """The loss network's features p(images), flattened."""
        features = self.loss_network(images, training=False)
        return ops.reshape(features, (ops.shape(features)[0], -1))

    def encode(self, images, training=False):
        """Returns `[mu, logvar]` of `images`."""
        inputs = self.features(images) if self.procedure.encoder == "features" else images
        return self.encoder(inputs, training=training)

    def call(self, images, training=False):
        """Decodes the mean embedding: a reconstruction or predicted features."""
        mu, _ = self.encode(images, training=training)
        return self.decoder(mu, training=training)

    def compute_losses(self, images, training=False, features=None):
        """Returns `(total, reconstruction, kl)` for a batch.

        Args:
            images: the images; None when `features` is given and the
                procedure needs no pixels (F-I-PS, F-F-FP).
            training: run the networks in training mode.
            features: `self.features(images)` when already computed (the
                cached loss-network features); the loss network then only
                runs on decoded images (PS).
        """
        target_features = None
        if features is not None:
            target_features = _float32_or_wider(ops.reshape(features, (ops.shape(features)[0], -1)))
        elif self.procedure.needs_loss_network:
            target_features = self.features(images)
        if self.procedure.encoder == "features":
            mu, logvar = self.encoder(target_features, training=training)
        else:
            mu, logvar = self.encoder(images, training=training)
        mu, logvar = _float32_or_wider(mu), _float32_or_wider(logvar)
        z = mu
        if self.variational:
            z = mu + self.reparameterisation_noise(ops.shape(mu)) * ops.exp(0.5 * logvar)
        decoded = _float32_or_wider(self.decoder(z, training=training))
        if self.procedure.loss == "pixel":
            reconstruction = losses.pixel_loss(images, decoded)
        else:
            reconstruction = self._feature_loss.from_features(target_features, decoded)
        kl = losses.kl_divergence(mu, logvar) if self.variational else ops.zeros((), reconstruction.dtype)
        return reconstruction + self.gamma * kl, reconstruction, kl

    def reparameterisation_noise(self, shape):
        """epsilon ~ N(0, I) of z = mu + epsilon * exp(logvar / 2), drawn from the model's seed.

        A method so that a comparison with another implementation
        (`bench/twin.py`) can feed both the same epsilon; training never
        replaces it.
        """
        return keras.random.normal(shape, seed=self.seed_generator)

    def _update_trackers(self, examples, total, reconstruction, kl):
        # Weighted by the batch's examples, as Keras weights its own loss: an
        # epoch's mean is then the mean over examples, whatever the batch size.
        self.loss_tracker.update_state(total, sample_weight=examples)
        self.reconstruction_loss_tracker.update_state(reconstruction, sample_weight=examples)
        if self.variational:
            self.kl_loss_tracker.update_state(kl, sample_weight=examples)
        return {m.name: m.result() for m in self.metrics}

    @staticmethod
    def _examples(images, features):
        return keras.ops.cast(keras.ops.shape(images if images is not None else features)[0], "float32")

    @staticmethod
    def _unpack(data):
        """`(images, features)` of a batch: images, `(images, ...)` or a dict.

        A dict with "images" and/or "features" carries cached loss-network
        features (see `keras_pae.perceptual.feature_cache`).
        """
        if isinstance(data, tuple):
            data = data[0]
        if isinstance(data, dict):
            return data.get("images"), data.get("features")
        return data, None

    def train_step(self, data):
        import tensorflow as tf

        images, features = self._unpack(data)
        with tf.GradientTape() as tape:
            total, reconstruction, kl = self.compute_losses(images, training=True, features=features)
            # Gradients are summed over replicas (tf.distribute): scale for
            # their mean; a LossScaleOptimizer (mixed float16) scales up.
            scaled = self.optimizer.scale_loss(total / tf.distribute.get_strategy().num_replicas_in_sync)
        gradients = tape.gradient(scaled, self.trainable_weights)
        # A plain autoencoder never uses its logvar head (kept so parameter
        # counts match the authors'): it gets no gradient and no update.
        pairs = [(g, v) for g, v in zip(gradients, self.trainable_weights) if g is not None]
        self.optimizer.apply(*zip(*pairs))
        return self._update_trackers(self._examples(images, features), total, reconstruction, kl)

    def test_step(self, data):
        images, features = self._unpack(data)
        losses = self.compute_losses(images, training=False, features=features)
        return self._update_trackers(self._examples(images, features), *losses)

    def embedding_model(self):
        """A functional model mapping images to mu (with p inside for F-*), sharing the model's layers.

        It leaves the logvar head out, so a model fine-tuned from it trains
        every weight it holds (Keras warns about weights without gradients).
        """
        inputs = keras.Input(self.image_shape, name="images")
        x = inputs
        if self.procedure.encoder == "features":
            x = keras.layers.Flatten(name="flatten_features")(self.loss_network(x))
        if hasattr(self.encoder, "outputs"):  # functional: the layers mu depends on
            mu = keras.Model(self.encoder.inputs, self.encoder.outputs[0], name=self.encoder.name)(x)
        else:
            mu, _ = self.encoder(x)
        return keras.Model(inputs, mu, name="embedder")

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            decoder=keras.saving.serialize_keras_object(self.decoder),
            loss_network=(
                None
                if self.loss_network is None
                else keras.saving.serialize_keras_object(self.loss_network)
            ),
            procedure=self.procedure.name,
            gamma=self.gamma,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "decoder", "loss_network"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def build_perceptual_autoencoder(
    procedure,
    image_shape=(64, 64, 3),
    z_dim=64,
    gamma=0.0,
    loss_weights="imagenet",
    imagenet_normalize=False,
    loss_network=None,
    seed=None,
    init="torch",
):
    """Builds the networks of `procedure` and the model that trains them.

    Feature-prediction paper, Sec. V. The procedure name is parsed once, here
    and in the model.

    Args:
        procedure: a procedure name such as `"I-F-FP"`.
        image_shape: (H, W, 3) with H, W = 64 + 16n.
        z_dim: size of the latent space.
        gamma: KL weight; 0 for a plain autoencoder.
        loss_weights: weights of the loss network (see `alexnet_features`).
        imagenet_normalize: normalise the loss network's input (off by default).
        loss_network: an already built loss network to use instead.
        seed: seed of the reparameterisation noise.
        init: `"torch"` (the authors' PyTorch defaults) or `"keras"`
            initialisation of the encoder and decoder (see
            `keras_pae.perceptual.networks`).
    """
    procedure = Procedure.parse(procedure)
    image_shape = tuple(image_shape)
    networks.check_image_size(*image_shape[:2])
    if int(z_dim) < 1:
        raise ValueError(f"z_dim must be a positive integer; got {z_dim}.")
    if procedure.needs_loss_network and loss_network is None:
        # The frozen target network stays float32 under mixed precision.
        with dtype_policy("float32"):
            loss_network = alexnet_features(
                image_shape, weights=loss_weights, imagenet_normalize=imagenet_normalize
            )
    feature_size = None
    if loss_network is not None:
        feature_size = 1
        for side in loss_network.output_shape[1:]:
            feature_size *= side
    if procedure.encoder == "image":
        encoder = networks.image_encoder(image_shape, z_dim, init)
    else:
        encoder = networks.feature_encoder(feature_size, z_dim, init)
    if procedure.decoder == "image":
        decoder = networks.image_decoder(z_dim, image_shape, init)
    else:
        decoder = networks.feature_decoder(z_dim, feature_size, init)
    model = PerceptualAutoencoder(
        encoder, decoder, loss_network, procedure=procedure.name, gamma=gamma, seed=seed
    )
    model(ops.zeros((1, *image_shape)))  # builds the model (BackupAndRestore needs it)
    return model
