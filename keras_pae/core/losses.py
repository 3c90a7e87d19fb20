"""The loss terms, as pure functions the models add up.

Feature-prediction paper, Eq. 1-3 (with f the squared error, averaged as the
authors' implementation does with `F.mse_loss(reduction="mean")`), and the KL
term of a VAE averaged over the batch AND the latent dimensions.
"""

from keras import ops


def _flat(x):
    return ops.reshape(x, (ops.shape(x)[0], -1))


def pixel_loss(images, reconstructions):
    """PW loss (Eq. 1): mean squared error between images and reconstructions."""
    return ops.mean(ops.square(images - reconstructions))


def perceptual_loss(loss_network, images, reconstructions, image_features=None, per_example=False):
    """PS loss (Eq. 2): MSE between the loss network's features of both images.

    Args:
        loss_network: frozen model mapping images to features.
        images: the original images.
        reconstructions: the decoded images.
        image_features: `loss_network(images)` when already computed.
        per_example: one mean per example (N,) instead of the batch's mean.
    """
    if image_features is None:
        image_features = loss_network(images, training=False)
    reconstruction_features = loss_network(reconstructions, training=False)
    return feature_prediction_loss(image_features, reconstruction_features, per_example)


def feature_prediction_loss(features, predicted_features, per_example=False):
    """FP loss (Eq. 3): MSE between the loss network's features and a prediction.

    Args:
        features: the loss network's features (N, ...).
        predicted_features: their prediction, of the same size per example.
        per_example: one mean per example (N,) instead of the batch's mean.
    """
    squared = ops.square(_flat(features) - _flat(predicted_features))
    # The batch mean is one reduction over every element, not a mean of per-example means:
    # PerceptualAutoencoder's losses stay what they were to the last bit.
    return ops.mean(squared, axis=-1) if per_example else ops.mean(squared)


def kl_divergence(mu, logvar):
    """KL(q(z|x) || N(0, I)), averaged over batch and latent dimensions."""
    return -ops.mean(1.0 + logvar - ops.square(mu) - ops.exp(logvar))
