"""The CAE of the bottleneck study: encoder and decoder builders.

Bottleneck paper, Section 2.2. Five down-sampling layers, each a
3x3 conv followed by two residual blocks of two convs, InstanceNorm + ReLU
after every conv. A stride-2 conv quadruples the channels, so every feature
map before the bottleneck has the input's volume (Eq. 3). Bottleneck size i
(1, 2, 3) sets the last i - 1 strides to 1 (keeping the channels), giving a
side of input / 2^(6 - i); the last conv gives the bottleneck the channels of
its compression level c (volume = c x input volume). The decoder mirrors the
encoder with bilinear x2 up-sampling + padded conv (channels / 4, Eq. 4).
"""

import keras

from keras_pae.bottleneck.geometry import (  # noqa: F401 (re-exported)
    COMPRESSIONS,
    NUM_LAYERS,
    SIZES,
    bottleneck_shape,
    parse_compression,
    strides,
)


def _norm_relu(x, name):
    # Instance norm of a 1x1 map is its constant offset (each value is its own
    # mean): it would erase the code of a 32x32 input's 1x1 bottleneck, so such
    # maps skip it. The paper's inputs (>= 96x96) never have 1x1 maps.
    if x.shape[1] * x.shape[2] > 1:
        x = keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, name=f"{name}_norm")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _conv(x, channels, name, stride=1):
    # A padded 3x3 conv on a 1x1 map only ever uses its centre tap (the other
    # eight multiply padding zeros and get no gradient), so it is exactly a 1x1
    # conv: the same function and training at a ninth of the cost. Its Glorot
    # initialisation keeps the 3x3 kernel's fan (scale 1/9).
    if x.shape[1] == x.shape[2] == 1:
        initializer = keras.initializers.VarianceScaling(1 / 9, mode="fan_avg", distribution="uniform")
        return keras.layers.Conv2D(channels, 1, strides=stride, kernel_initializer=initializer, name=name)(x)
    return keras.layers.Conv2D(channels, 3, strides=stride, padding="same", name=name)(x)


def residual_block(x, name):
    """Two 3x3 convs with norm + ReLU, added to the input (He et al., 2016)."""
    y = _norm_relu(_conv(x, x.shape[-1], f"{name}_conv1"), f"{name}_1")
    y = _conv(y, x.shape[-1], f"{name}_conv2")
    if y.shape[1] * y.shape[2] > 1:
        y = keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, name=f"{name}_2_norm")(y)
    return keras.layers.ReLU(name=f"{name}_relu")(keras.layers.Add(name=f"{name}_add")([x, y]))


def _stage(x, channels, name, residual_blocks, stride=1, upsample=False):
    if upsample:
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"{name}_upsample")(x)
    x = _norm_relu(_conv(x, channels, f"{name}_conv", stride), name)
    for block in range(residual_blocks):
        x = residual_block(x, f"{name}_res{block + 1}")
    return x


def _level_channels(image_shape, size, compression):
    """Channels after each of the five encoder stages (the last is the bottleneck)."""
    channels = [int(image_shape[-1])]
    for stride in strides(size)[:-1]:
        channels.append(channels[-1] * (4 if stride == 2 else 1))
    return channels[1:] + [bottleneck_shape(image_shape, size, compression)[-1]]


def bottleneck_encoder(image_shape, size, compression, residual_blocks=2):
    """Images (N, H, W, C) in [0, 1] -> bottleneck codes (N, h, w, channels).

    Args:
        image_shape: (H, W, C), sides multiples of 32.
        size: bottleneck size 1, 2 or 3.
        compression: bottleneck volume / input volume.
        residual_blocks: residual blocks after each conv (the paper: 2).
    """
    inputs = keras.Input(tuple(image_shape), name="images")
    x = inputs
    for level, (stride, channels) in enumerate(
        zip(strides(size), _level_channels(image_shape, size, compression)), start=1
    ):
        x = _stage(x, channels, f"down{level}", residual_blocks, stride=stride)
    return keras.Model(inputs, x, name="encoder")


def bottleneck_decoder(image_shape, size, compression, residual_blocks=2):
    """Bottleneck codes -> images: the encoder mirrored, a sigmoid conv last.

    The last up-sampling conv produces the image (C channels) through a
    sigmoid, without norm or residual blocks: instance norm + ReLU would fix
    each output channel's mean and clip it.

    Args:
        image_shape: (H, W, C) of the images.
        size: bottleneck size 1, 2 or 3.
        compression: bottleneck volume / input volume.
        residual_blocks: residual blocks after each conv (the paper: 2).
    """
    code_shape = bottleneck_shape(image_shape, size, compression)
    inputs = keras.Input(code_shape, name="code")
    mirrored = list(reversed(strides(size)))
    targets = list(reversed(_level_channels(image_shape, size, compression)[:-1]))
    x = inputs
    for level, (stride, channels) in enumerate(zip(mirrored[:-1], targets), start=1):
        x = _stage(x, channels, f"up{level}", residual_blocks, upsample=stride == 2)
    if mirrored[-1] == 2:
        x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up{NUM_LAYERS}_upsample")(x)
    x = keras.layers.Conv2D(
        int(image_shape[-1]), 3, padding="same", activation="sigmoid", name=f"up{NUM_LAYERS}_output"
    )(x)
    return keras.Model(inputs, x, name="decoder")
