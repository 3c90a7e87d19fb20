"""The adversarial VAE's loss terms, as pure functions the two models add up.

Semi-supervised adversarial VAE paper, Eq. 6-11. Squared norms are
averaged over every element (batch and feature axes), as `keras.losses.MSE`
does; the KL is `keras_pae.core.losses.kl_divergence`.
"""

from keras import ops

from keras_pae.core.losses import kl_divergence  # noqa: F401  (re-exported: Eq. 4)

DEFAULT_ALPHAS = (1.0, 0.1, 0.01)


def masked_categorical_crossentropy(labels, probabilities, mask):
    """Eq. 7 over the labelled examples only: mean CE where `mask` is 1.

    The labels of masked-out examples never reach the result: their
    cross-entropy is replaced (not multiplied) by 0, so even a NaN or
    out-of-range label cannot leak through. A batch with no labelled example
    gives 0.

    Args:
        labels: integer class indices (N,).
        probabilities: softmax outputs (N, classes).
        mask: 1 for a labelled example, 0 for an unlabelled one (N,).
    """
    mask = ops.cast(ops.reshape(mask, (-1,)), "float32") > 0
    num_classes = ops.shape(probabilities)[-1]
    safe_labels = ops.where(mask, ops.cast(ops.reshape(labels, (-1,)), "int32"), 0)
    one_hot = ops.one_hot(safe_labels, num_classes)
    log_p = ops.log(ops.clip(probabilities, 1e-7, 1.0))
    per_example = -ops.sum(one_hot * log_p, axis=-1)
    per_example = ops.where(mask, per_example, ops.zeros_like(per_example))
    count = ops.sum(ops.cast(mask, "float32"))
    return ops.sum(per_example) / ops.maximum(count, 1.0)


def feature_reconstruction_loss(features, reconstructed_features, alphas=DEFAULT_ALPHAS):
    """Eq. 9: sum_i alpha_i * mean ||F_i - F_i_hat||^2.

    Args:
        features: the encoder features F_i of the input images (a list).
        reconstructed_features: the same features of the decoded images.
        alphas: one weight per feature layer.
    """
    if not len(features) == len(reconstructed_features) == len(alphas):
        raise ValueError(
            f"Need one alpha per feature layer: {len(alphas)} alphas for {len(features)} layers."
        )
    total = 0.0
    for alpha, f, f_hat in zip(alphas, features, reconstructed_features):
        total = total + alpha * ops.mean(ops.square(f - f_hat))
    return total


def discriminator_loss(real_scores, fake_scores):
    """Least-squares discriminator loss: real images to +1, decoded ones to -1 (Algorithm 2)."""
    return ops.mean(ops.square(real_scores - 1.0)) + ops.mean(ops.square(fake_scores + 1.0))


def adversarial_loss(real_scores, fake_scores):
    """Eq. 10: mean (Dis(X) - Dis(X_hat))^2, the decoder's adversarial term."""
    return ops.mean(ops.square(real_scores - fake_scores))


def latent_loss(class_z, class_z_hat):
    """Eq. 11: mean ||Class(Z) - Class(Z_hat)||^2 between classifier outputs."""
    return ops.mean(ops.square(class_z - class_z_hat))
