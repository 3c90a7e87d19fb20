"""Encoders and decoders of the six procedures, built by small functions.

Feature-prediction paper, Section V and Figs. 3-4 (SPEC §3); layer for layer
the authors' PyTorch models (`FourLayerCVAE`, `FeaturePredictorCVAE`,
`FeatureAutoencoder`, `PerceptualFeatureToImgCVAE`), so trainable parameter
counts match theirs. Every encoder returns `[mu, logvar]`: the authors build
both heads even for a plain autoencoder, which only uses mu.
"""

import keras

from keras_pae.perceptual.conv_transpose import Conv2DTranspose
from keras_pae.perceptual.fused_batch_normalization import FusedBatchNormalization
from keras_pae.procedures import check_image_size

# torch BatchNorm2d defaults: momentum 0.1 (Keras counts the other way), eps 1e-5.
_BN = dict(momentum=0.9, epsilon=1e-5)
ENCODER_CHANNELS = (32, 64, 128, 256)
MAX_FEATURE_HIDDEN = 2048


def _latent_heads(x, z_dim):
    mu = keras.layers.Dense(z_dim, name="mu")(x)
    logvar = keras.layers.Dense(z_dim, name="logvar")(x)
    return [mu, logvar]


def image_encoder(image_shape, z_dim):
    """4 x [Conv 4x4 s2, BatchNorm, ReLU] (32-64-128-256), flatten, mu/logvar.

    Args:
        image_shape: (H, W, 3) with H, W = 64 + 16n.
        z_dim: size of the latent space.
    """
    check_image_size(*image_shape[:2])
    inputs = keras.Input(image_shape, name="images")
    x = inputs
    for i, channels in enumerate(ENCODER_CHANNELS):
        x = keras.layers.Conv2D(channels, 4, strides=2, padding="valid", name=f"conv{i}")(x)
        x = FusedBatchNormalization(**_BN, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _latent_heads(x, z_dim), name="image_encoder")


def image_decoder(z_dim, image_shape):
    """Dense to g x g x 1024, then 4 transposed convs up to the image.

    ConvT 5x5 s2 (128), 5x5 s2 (64), 6x6 s2 (32), 6x6 s2 (3) with BatchNorm +
    ReLU between and a sigmoid at the end: 1-5-13-30-64 or 3-9-21-46-96.

    Args:
        z_dim: size of the latent space.
        image_shape: (H, W, 3) of the images to produce.
    """
    height, width = image_shape[:2]
    check_image_size(height, width)
    grid = ((height - 64) // 16 + 1, (width - 64) // 16 + 1)
    inputs = keras.Input((z_dim,), name="z")
    x = keras.layers.Dense(grid[0] * grid[1] * 1024, activation="relu", name="dense")(inputs)
    x = keras.layers.Reshape((*grid, 1024), name="reshape")(x)
    for i, (channels, kernel) in enumerate(((128, 5), (64, 5), (32, 6))):
        x = Conv2DTranspose(channels, kernel, strides=2, padding="valid", name=f"deconv{i}")(x)
        x = FusedBatchNormalization(**_BN, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    outputs = Conv2DTranspose(
        image_shape[-1], 6, strides=2, padding="valid", activation="sigmoid", name="deconv3"
    )(x)
    return keras.Model(inputs, outputs, name="image_decoder")


def feature_hidden_size(feature_size):
    """min(features / 2, 2048): the authors' hidden size (paper: 2048)."""
    return int(min(feature_size / 2, MAX_FEATURE_HIDDEN))


def feature_encoder(feature_size, z_dim):
    """Dense(hidden) + ReLU on the flattened loss-network features, mu/logvar.

    Args:
        feature_size: number of loss-network features (9408 for 64x64).
        z_dim: size of the latent space.
    """
    inputs = keras.Input((feature_size,), name="features")
    x = keras.layers.Dense(feature_hidden_size(feature_size), activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, _latent_heads(x, z_dim), name="feature_encoder")


def feature_decoder(z_dim, feature_size):
    """Dense(hidden) + ReLU, Dense(features), no output activation.

    Args:
        z_dim: size of the latent space.
        feature_size: number of loss-network features to predict.
    """
    inputs = keras.Input((z_dim,), name="z")
    x = keras.layers.Dense(feature_hidden_size(feature_size), activation="relu", name="hidden")(inputs)
    outputs = keras.layers.Dense(feature_size, name="features")(x)
    return keras.Model(inputs, outputs, name="feature_decoder")
