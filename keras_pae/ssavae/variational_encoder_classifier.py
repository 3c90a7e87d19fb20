"""Phase 1: the Variational Encoder Classifier (VEC)."""

import keras
from keras import ops

from keras_pae.ssavae import losses


def sample_latent(mu, logvar, seed_generator):
    """z = mu + sigma * eps, eps ~ N(0, I) (Eq. 1)."""
    noise = keras.random.normal(ops.shape(mu), seed=seed_generator)
    return mu + noise * ops.exp(0.5 * logvar)


@keras.saving.register_keras_serializable(package="keras_pae")
class VariationalEncoderClassifier(keras.Model):
    """A variational encoder and a classifier on its sampled z, trained together.

    Semi-supervised adversarial VAE paper, Section 2.2, Eq. 6-7 and
    Algorithm 1: loss = KL + categorical cross-entropy. Data is
    `(images, labels, labelled_mask)`: the mask rides in Keras' sample-weight
    slot and selects which examples' labels the cross-entropy sees (the
    semi-supervised option); every example contributes to the KL. Without a
    mask every label is used. Evaluation classifies mu, without noise.

    `kl_weight` and `kl_warmup_steps` are not in the paper (Eq. 6 weighs
    both terms 1). With the true KL at weight 1 and K_z = 2 the encoder
    collapses on Fashion-MNIST (mu -> 0, sigma -> 1, the classifier sees
    noise and stays at chance, test accuracy 0.10), even after a warm-up: ten
    classes cannot be separated in a 2-D N(0, I) for less KL than the 2.3
    nats of cross-entropy that separating them saves. A smaller weight keeps
    the clusters, and ramping it from 0 over the first steps (KL annealing,
    Bowman et al. 2016) lets the classifier learn before the KL bites. The
    tracked `kl_loss` is the unweighted KL; `loss` is the weighted sum
    being minimised.

    Args:
        encoder: model mapping images to `[mu, logvar]`.
        classifier: model mapping z to class probabilities.
        kl_weight: the KL's weight once warmed up (the paper: 1).
        kl_warmup_steps: optimizer steps over which the KL weight rises from
            0 to `kl_weight`; 0 uses it from the first step.
        seed: seed of the sampling noise.
    """

    def __init__(self, encoder, classifier, kl_weight=1.0, kl_warmup_steps=0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.classifier = classifier
        if kl_weight < 0 or kl_warmup_steps < 0:
            raise ValueError(f"kl_weight and kl_warmup_steps must be >= 0; got {kl_weight}, {kl_warmup_steps}.")
        self.kl_weight = float(kl_weight)
        self.kl_warmup_steps = int(kl_warmup_steps)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")
        self.classification_loss_tracker = keras.metrics.Mean(name="classification_loss")
        self.accuracy_tracker = keras.metrics.SparseCategoricalAccuracy(name="accuracy")

    @property
    def metrics(self):
        return [
            self.loss_tracker,
            self.kl_loss_tracker,
            self.classification_loss_tracker,
            self.accuracy_tracker,
        ]

    def call(self, images, training=False):
        """Returns `[mu, logvar, Class(mu)]`."""
        mu, logvar = self.encoder(images, training=training)
        return [mu, logvar, self.classifier(mu, training=training)]

    def compute_losses(self, images, labels, mask=None, training=False):
        """Returns `(total, kl, cross_entropy, probabilities)` for one batch.

        Training classifies a sampled z (Algorithm 1); evaluation classifies mu.
        """
        if mask is None:
            mask = ops.ones((ops.shape(images)[0],))
        mu, logvar = self.encoder(images, training=training)
        z = sample_latent(mu, logvar, self.seed_generator) if training else mu
        probabilities = self.classifier(z, training=training)
        kl = losses.kl_divergence(mu, logvar)
        cross_entropy = losses.masked_categorical_crossentropy(labels, probabilities, mask)
        return self.current_kl_weight(training) * kl + cross_entropy, kl, cross_entropy, probabilities

    def current_kl_weight(self, training=True):
        """kl_weight * min(1, step / kl_warmup_steps) while training, else kl_weight."""
        if not training or not self.kl_warmup_steps or self.optimizer is None:
            return self.kl_weight
        step = ops.cast(self.optimizer.iterations, "float32")
        return self.kl_weight * ops.minimum(1.0, step / float(self.kl_warmup_steps))

    def _update_trackers(self, labels, mask, total, kl, cross_entropy, probabilities):
        self.loss_tracker.update_state(total)
        self.kl_loss_tracker.update_state(kl)
        self.classification_loss_tracker.update_state(cross_entropy)
        if mask is None:
            mask = ops.ones((ops.shape(probabilities)[0],))
        labelled = ops.cast(ops.reshape(mask, (-1,)), "float32") > 0
        safe_labels = ops.where(labelled, ops.cast(ops.reshape(labels, (-1,)), "int32"), 0)
        self.accuracy_tracker.update_state(safe_labels, probabilities, sample_weight=ops.cast(labelled, "float32"))
        return {m.name: m.result() for m in self.metrics}

    @staticmethod
    def _unpack(data):
        images, labels, mask = keras.utils.unpack_x_y_sample_weight(data)
        if labels is None:
            raise ValueError("The Variational Encoder Classifier trains on (images, labels[, labelled_mask]).")
        return images, labels, mask

    def train_step(self, data):
        import tensorflow as tf

        images, labels, mask = self._unpack(data)
        with tf.GradientTape() as tape:
            total, kl, cross_entropy, probabilities = self.compute_losses(images, labels, mask, training=True)
        gradients = tape.gradient(total, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._update_trackers(labels, mask, total, kl, cross_entropy, probabilities)

    def test_step(self, data):
        images, labels, mask = self._unpack(data)
        return self._update_trackers(labels, mask, *self.compute_losses(images, labels, mask))

    def embedding_model(self):
        """A functional model mapping images to mu, sharing the encoder's layers (not logvar's head)."""
        return keras.Model(self.encoder.inputs, self.encoder.outputs[0], name="embedder")

    def get_config(self):
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            classifier=keras.saving.serialize_keras_object(self.classifier),
            kl_weight=self.kl_weight,
            kl_warmup_steps=self.kl_warmup_steps,
            seed=self.seed,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "classifier"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
