"""Phase 2: the decoder, trained against frozen encoder features, a discriminator and the classifier."""

import keras
from keras import ops

from keras_pae.ssavae import losses, networks
from keras_pae.ssavae.variational_encoder_classifier import sample_latent


@keras.saving.register_keras_serializable(package="keras_pae")
class AdversarialDecoder(keras.Model):
    """Trains a decoder (and its discriminator) with the encoder and classifier frozen.

    Semi-supervised adversarial VAE paper, Section 2.3, Eq. 8-11 and
    Algorithm 2. Each step first updates the least-squares
    discriminator `n_dis` times (+1 on real images, -1 on decoded ones, one
    tape over the discriminator's weights), then the decoder once on
    L_rec + beta * L_adv + gamma * L_latent (one tape over the decoder's
    weights). As in Keras' WGAN-GP example the `n_dis` updates reuse the
    step's batch, where Algorithm 2 draws a new one each time. Compile with
    `compile(d_optimizer=..., g_optimizer=...)`. Evaluation decodes mu.

    Args:
        encoder: the phase-1 encoder (images -> `[mu, logvar]`); frozen.
        classifier: the phase-1 classifier (z -> probabilities); frozen.
        decoder: model mapping z to images.
        discriminator: model mapping images to one linear score.
        alphas: weights of the feature layers in L_rec (Eq. 9).
        beta: weight of the adversarial term.
        gamma: weight of the latent term.
        n_dis: discriminator updates per decoder update.
        feature_layers: names of the encoder layers whose outputs are F_i.
        seed: seed of the sampling noise.
    """

    def __init__(
        self,
        encoder,
        classifier,
        decoder,
        discriminator,
        alphas=losses.DEFAULT_ALPHAS,
        beta=0.0,
        gamma=0.0,
        n_dis=1,
        feature_layers=networks.FEATURE_LAYERS,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if beta < 0 or gamma < 0:
            raise ValueError(f"beta and gamma must be >= 0; got beta={beta}, gamma={gamma}.")
        if int(n_dis) < 1:
            raise ValueError(f"n_dis must be a positive integer; got {n_dis}.")
        if len(alphas) != len(feature_layers):
            raise ValueError(
                f"Need one alpha per feature layer: {len(alphas)} alphas for layers {', '.join(feature_layers)}."
            )
        self.encoder = encoder
        self.classifier = classifier
        self.decoder = decoder
        self.discriminator = discriminator
        # Phase 1 is over: neither network may change, BatchNorm statistics included.
        self.encoder.trainable = False
        self.classifier.trainable = False
        self.alphas = tuple(float(a) for a in alphas)
        self.beta = float(beta)
        self.gamma = float(gamma)
        self.n_dis = int(n_dis)
        self.feature_layers = tuple(feature_layers)
        self.features = networks.feature_extractor(encoder, self.feature_layers)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.adversarial_loss_tracker = keras.metrics.Mean(name="adversarial_loss")
        self.latent_loss_tracker = keras.metrics.Mean(name="latent_loss")
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.pixel_loss_tracker = keras.metrics.Mean(name="pixel_loss")

    def compile(self, d_optimizer, g_optimizer, **kwargs):
        """Args: d_optimizer for the discriminator, g_optimizer for the decoder."""
        # No `optimizer`: Keras' default one would be saved, and restored, for nothing.
        super().compile(optimizer=None, **kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        # Built now, so `BackupAndRestore` finds their slots to restore into.
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.decoder.trainable_variables)

    def get_compile_config(self):
        if not getattr(self, "compiled", False):
            return None
        return {
            "d_optimizer": keras.saving.serialize_keras_object(self.d_optimizer),
            "g_optimizer": keras.saving.serialize_keras_object(self.g_optimizer),
            "run_eagerly": self.run_eagerly,
        }

    def compile_from_config(self, config):
        """Compiles a reloaded model with its two optimizers, so training can go on."""
        self.compile(
            d_optimizer=keras.saving.deserialize_keras_object(config["d_optimizer"]),
            g_optimizer=keras.saving.deserialize_keras_object(config["g_optimizer"]),
            run_eagerly=config.get("run_eagerly", False),
        )

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.reconstruction_loss_tracker,
            self.adversarial_loss_tracker,
            self.latent_loss_tracker,
            self.d_loss_tracker,
            self.pixel_loss_tracker,
        ]

    def call(self, images, training=False):
        """Reconstructs images through mu."""
        mu, _ = self.encoder(images, training=False)
        return self.decoder(mu, training=training)

    def decoder_losses(self, images, z, decoded, sample=True):
        """Returns `(total, reconstruction, adversarial, latent)` (Eq. 8-11).

        Args:
            images: the real images X.
            z: their latent codes Z, the decoder's input.
            decoded: Dec(Z).
            sample: draw Z_hat = Enc(decoded) with noise (training) or take its mu.
        """
        features = self.features(images, training=False)
        reconstruction = losses.feature_reconstruction_loss(
            features, self.features(decoded, training=False), self.alphas
        )
        # A zero-weighted term is still measured, but nothing flows back through it.
        judged = decoded if self.beta else ops.stop_gradient(decoded)
        adversarial = losses.adversarial_loss(
            self.discriminator(images, training=False), self.discriminator(judged, training=False)
        )
        encoded = decoded if self.gamma else ops.stop_gradient(decoded)
        mu_hat, logvar_hat = self.encoder(encoded, training=False)
        z_hat = sample_latent(mu_hat, logvar_hat, self.seed_generator) if sample else mu_hat
        latent = losses.latent_loss(self.classifier(z, training=False), self.classifier(z_hat, training=False))
        total = reconstruction + self.beta * adversarial + self.gamma * latent
        return total, reconstruction, adversarial, latent

    def _discriminator_loss(self, images, decoded, training):
        return losses.discriminator_loss(
            self.discriminator(images, training=training), self.discriminator(decoded, training=training)
        )

    def _update_trackers(self, images, decoded, total, reconstruction, adversarial, latent, d_loss):
        self.loss_tracker.update_state(total)
        self.reconstruction_loss_tracker.update_state(reconstruction)
        self.adversarial_loss_tracker.update_state(adversarial)
        self.latent_loss_tracker.update_state(latent)
        self.d_loss_tracker.update_state(d_loss)
        self.pixel_loss_tracker.update_state(ops.mean(ops.square(images - decoded)))
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        import tensorflow as tf

        images = keras.utils.unpack_x_y_sample_weight(data)[0]
        mu, logvar = self.encoder(images, training=False)
        z = sample_latent(mu, logvar, self.seed_generator)

        # 1. The discriminator; the decoder's weights do not move meanwhile.
        fake = ops.stop_gradient(self.decoder(z, training=True))
        for _ in range(self.n_dis):
            with tf.GradientTape() as tape:
                d_loss = self._discriminator_loss(images, fake, training=True)
            gradients = tape.gradient(d_loss, self.discriminator.trainable_weights)
            self.d_optimizer.apply(gradients, self.discriminator.trainable_weights)

        # 2. The decoder.
        with tf.GradientTape() as tape:
            decoded = self.decoder(z, training=True)
            total, reconstruction, adversarial, latent = self.decoder_losses(images, z, decoded)
        gradients = tape.gradient(total, self.decoder.trainable_weights)
        self.g_optimizer.apply(gradients, self.decoder.trainable_weights)
        return self._update_trackers(images, decoded, total, reconstruction, adversarial, latent, d_loss)

    def test_step(self, data):
        images = keras.utils.unpack_x_y_sample_weight(data)[0]
        mu, _ = self.encoder(images, training=False)
        decoded = self.decoder(mu, training=False)
        d_loss = self._discriminator_loss(images, decoded, training=False)
        return self._update_trackers(images, decoded, *self.decoder_losses(images, mu, decoded, sample=False), d_loss)

    def get_config(self):
        config = super().get_config()
        config.update(
            {key: keras.saving.serialize_keras_object(getattr(self, key))
             for key in ("encoder", "classifier", "decoder", "discriminator")},
            alphas=list(self.alphas),
            beta=self.beta,
            gamma=self.gamma,
            n_dis=self.n_dis,
            feature_layers=list(self.feature_layers),
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "classifier", "decoder", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
