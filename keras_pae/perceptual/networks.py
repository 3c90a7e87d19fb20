"""Encoders and decoders of the six procedures, built by small functions.

Feature-prediction paper, Section V and Figs. 3-4; layer for layer
the authors' PyTorch models (`FourLayerCVAE`, `FeaturePredictorCVAE`,
`FeatureAutoencoder`, `PerceptualFeatureToImgCVAE`), so trainable parameter
counts match theirs. Every encoder returns `[mu, logvar]`: the authors build
both heads even for a plain autoencoder, which only uses mu.

Initialisation (`init`): `"torch"` (the default) draws every kernel and bias
as PyTorch's layers do by default, which the authors' code keeps: uniform in
+-1/sqrt(fan_in), fan_in being a convolution's kernel height x width x input
channels, a transposed convolution's kernel height x width x OUTPUT channels
(PyTorch computes it from the weight's second axis) and a dense layer's
inputs. `"keras"` uses Keras's defaults (Glorot uniform kernels, zero biases).
"""

import keras

from keras_pae.perceptual.config import INITS
from keras_pae.core.initializers import torch_default
from keras_pae.perceptual.conv_transpose import Conv2DTranspose
from keras_pae.perceptual.patch_conv import Conv2D
from keras_pae.perceptual.fused_batch_normalization import FusedBatchNormalization
from keras_pae.perceptual.procedures import check_image_size

# torch BatchNorm2d defaults: momentum 0.1 (Keras counts the other way), eps 1e-5, and
# the moving variance averaged from the unbiased batch variance (Keras: the biased one).
_BN = dict(momentum=0.9, epsilon=1e-5, unbiased_moving_variance=True)
ENCODER_CHANNELS = (32, 64, 128, 256)
MAX_FEATURE_HIDDEN = 2048


def initializers(init, fan_in):
    """Keyword arguments giving a layer with `fan_in` the `init` scheme (see the module)."""
    if init == "keras":
        return {}
    if init != "torch":
        raise ValueError(f"Unknown init {init!r}; valid values are {', '.join(INITS)}.")
    kernel, bias = torch_default(fan_in)
    return dict(kernel_initializer=kernel, bias_initializer=bias)


def _dense(units, x, init, **kwargs):
    return keras.layers.Dense(units, **initializers(init, x.shape[-1]), **kwargs)(x)


def _latent_heads(x, z_dim, init):
    return [_dense(z_dim, x, init, name="mu"), _dense(z_dim, x, init, name="logvar")]


def image_encoder(image_shape, z_dim, init="torch"):
    """4 x [Conv 4x4 s2, BatchNorm, ReLU] (32-64-128-256), flatten, mu/logvar.

    Args:
        image_shape: (H, W, 3) with H, W = 64 + 16n.
        z_dim: size of the latent space.
        init: `"torch"` or `"keras"` initialisation (see the module).
    """
    check_image_size(*image_shape[:2])
    inputs = keras.Input(image_shape, name="images")
    x = inputs
    for i, channels in enumerate(ENCODER_CHANNELS):
        x = Conv2D(
            channels, 4, strides=2, padding="valid", **initializers(init, 4 * 4 * x.shape[-1]), name=f"conv{i}"
        )(x)
        x = FusedBatchNormalization(**_BN, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _latent_heads(x, z_dim, init), name="image_encoder")


def image_decoder(z_dim, image_shape, init="torch"):
    """Dense to g x g x 1024, then 4 transposed convs up to the image.

    ConvT 5x5 s2 (128), 5x5 s2 (64), 6x6 s2 (32), 6x6 s2 (3) with BatchNorm +
    ReLU between and a sigmoid at the end: 1-5-13-30-64 or 3-9-21-46-96.

    Args:
        z_dim: size of the latent space.
        image_shape: (H, W, 3) of the images to produce.
        init: `"torch"` or `"keras"` initialisation (see the module).
    """
    height, width = image_shape[:2]
    check_image_size(height, width)
    grid = ((height - 64) // 16 + 1, (width - 64) // 16 + 1)
    inputs = keras.Input((z_dim,), name="z")
    x = _dense(grid[0] * grid[1] * 1024, inputs, init, activation="relu", name="dense")
    x = keras.layers.Reshape((*grid, 1024), name="reshape")(x)
    for i, (channels, kernel) in enumerate(((128, 5), (64, 5), (32, 6))):
        x = Conv2DTranspose(
            channels, kernel, strides=2, padding="valid", **initializers(init, kernel * kernel * channels), name=f"deconv{i}"
        )(x)
        x = FusedBatchNormalization(**_BN, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
    outputs = Conv2DTranspose(
        image_shape[-1], 6, strides=2, padding="valid", activation="sigmoid",
        **initializers(init, 6 * 6 * image_shape[-1]), name="deconv3",
    )(x)
    return keras.Model(inputs, outputs, name="image_decoder")


def feature_hidden_size(feature_size):
    """min(features / 2, 2048): the authors' hidden size (paper: 2048)."""
    return int(min(feature_size / 2, MAX_FEATURE_HIDDEN))


def feature_encoder(feature_size, z_dim, init="torch"):
    """Dense(hidden) + ReLU on the flattened loss-network features, mu/logvar.

    Args:
        feature_size: number of loss-network features (9408 for 64x64).
        z_dim: size of the latent space.
        init: `"torch"` or `"keras"` initialisation (see the module).
    """
    inputs = keras.Input((feature_size,), name="features")
    x = _dense(feature_hidden_size(feature_size), inputs, init, activation="relu", name="hidden")
    return keras.Model(inputs, _latent_heads(x, z_dim, init), name="feature_encoder")


def feature_decoder(z_dim, feature_size, init="torch"):
    """Dense(hidden) + ReLU, Dense(features), no output activation.

    Args:
        z_dim: size of the latent space.
        feature_size: number of loss-network features to predict.
        init: `"torch"` or `"keras"` initialisation (see the module).
    """
    inputs = keras.Input((z_dim,), name="z")
    x = _dense(feature_hidden_size(feature_size), inputs, init, activation="relu", name="hidden")
    outputs = _dense(feature_size, x, init, name="features")
    return keras.Model(inputs, outputs, name="feature_decoder")
