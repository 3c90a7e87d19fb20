"""The encoder, classifier, decoder and discriminator of the adversarial VAE.

Semi-supervised adversarial VAE paper, Section 3.2 and Fig. 6. The
paper gives layer counts but no widths; `width` is the channel count of the
first convolutions (doubled after each pooling) and `hidden` the size of the
dense layers. The residual block is Hou et al.'s (the paper's [54]):
conv-BN-LeakyReLU-conv-BN added to its input.
"""

import keras

# The encoder's first three conv stages, whose outputs the decoder's feature
# reconstruction loss compares (Section 2.3.1, Fig. 4).
FEATURE_LAYERS = ("stage1", "stage2", "stage3")
_ALPHA = 0.2  # LeakyReLU slope
# Keras' default momentum (0.99) leaves the moving statistics far from the
# batch ones after the few hundred steps of a short run, and phase 2 uses the
# encoder in inference mode: 0.9 (PyTorch's 0.1) tracks them in tens of steps.
_BN = dict(momentum=0.9)


def _conv_residual_block(x, name):
    channels = x.shape[-1]
    y = keras.layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv_a")(x)
    y = keras.layers.BatchNormalization(**_BN, name=f"{name}_bn_a")(y)
    y = keras.layers.LeakyReLU(_ALPHA, name=f"{name}_lrelu_a")(y)
    y = keras.layers.Conv2D(channels, 3, padding="same", name=f"{name}_conv_b")(y)
    y = keras.layers.BatchNormalization(**_BN, name=f"{name}_bn_b")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def _dense_residual_block(x, name):
    units = x.shape[-1]
    y = keras.layers.Dense(units, name=f"{name}_dense_a")(x)
    y = keras.layers.BatchNormalization(**_BN, name=f"{name}_bn_a")(y)
    y = keras.layers.LeakyReLU(_ALPHA, name=f"{name}_lrelu_a")(y)
    y = keras.layers.Dense(units, name=f"{name}_dense_b")(y)
    y = keras.layers.BatchNormalization(**_BN, name=f"{name}_bn_b")(y)
    return keras.layers.Add(name=f"{name}_add")([x, y])


def _check_image_shape(image_shape):
    height, width, channels = image_shape
    if height % 4 or width % 4 or channels not in (1, 3):
        raise ValueError(
            f"The adversarial VAE takes images whose sides are multiples of 4 (two 2x2 poolings) "
            f"with 1 or 3 channels; got {tuple(image_shape)}."
        )


def encoder(image_shape=(28, 28, 1), latent_dim=2, width=32, hidden=256):
    """6 conv 3x3 stride 1, each + residual block + LeakyReLU; 2 max-pools; 3 Dense; mu, logvar.

    Pools follow stages 2 and 4. Outputs `[mu, logvar]`; the sampling is
    the training model's (it owns the seed).

    Args:
        image_shape: (H, W, C), H and W multiples of 4, C = 1 or 3.
        latent_dim: K_z, the size of the latent space.
        width: channels of stages 1-2 (2x, 4x for stages 3-4, 5-6).
        hidden: units of the three dense layers.
    """
    _check_image_shape(image_shape)
    inputs = keras.Input(image_shape, name="images")
    x = inputs
    for stage in range(1, 7):
        channels = width * 2 ** ((stage - 1) // 2)
        x = keras.layers.Conv2D(channels, 3, padding="same", name=f"conv{stage}")(x)
        x = _conv_residual_block(x, f"res{stage}")
        x = keras.layers.LeakyReLU(_ALPHA, name=f"stage{stage}")(x)
        if stage in (2, 4):
            x = keras.layers.MaxPooling2D(2, name=f"pool{stage // 2}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i in range(1, 4):
        x = keras.layers.Dense(hidden, name=f"dense{i}")(x)
        x = keras.layers.LeakyReLU(_ALPHA, name=f"dense{i}_lrelu")(x)
    mu = keras.layers.Dense(latent_dim, name="mu")(x)
    logvar = keras.layers.Dense(latent_dim, name="logvar")(x)
    return keras.Model(inputs, [mu, logvar], name="encoder")


def feature_extractor(encoder_model, layers=FEATURE_LAYERS):
    """The outputs of `layers` of an encoder, as one model sharing its weights.

    Args:
        encoder_model: a model built by `encoder`.
        layers: names of the layers whose outputs are the features F_i.
    """
    outputs = [encoder_model.get_layer(name).output for name in layers]
    return keras.Model(encoder_model.input, outputs, name="encoder_features")


def classifier(latent_dim=2, num_classes=10, hidden=256):
    """3 x [Dense + BN + LeakyReLU + residual block], then a softmax.

    Args:
        latent_dim: K_z.
        num_classes: number of classes.
        hidden: units of the dense layers.
    """
    inputs = keras.Input((latent_dim,), name="z")
    x = inputs
    for i in range(1, 4):
        x = keras.layers.Dense(hidden, name=f"dense{i}")(x)
        x = keras.layers.BatchNormalization(**_BN, name=f"bn{i}")(x)
        x = keras.layers.LeakyReLU(_ALPHA, name=f"lrelu{i}")(x)
        x = _dense_residual_block(x, f"res{i}")
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="classifier")


def decoder(latent_dim=2, image_shape=(28, 28, 1), width=32, hidden=256):
    """3 Dense + BN + LeakyReLU; 6 conv 3x3 + BN + LeakyReLU + residual block, 2 upsamplings; output conv.

    The seventh convolution maps to the image's channels with a sigmoid.
    Upsamplings follow stages 2 and 4, mirroring the encoder.

    Args:
        latent_dim: K_z.
        image_shape: (H, W, C) of the images to produce.
        width: channels of the last two stages (2x, 4x before).
        hidden: units of the first two dense layers.
    """
    _check_image_shape(image_shape)
    height, width_px, channels_out = image_shape
    start = (height // 4, width_px // 4, width * 4)
    inputs = keras.Input((latent_dim,), name="z")
    x = inputs
    for i, units in enumerate((hidden, hidden, start[0] * start[1] * start[2]), start=1):
        x = keras.layers.Dense(units, name=f"dense{i}")(x)
        x = keras.layers.BatchNormalization(**_BN, name=f"dense{i}_bn")(x)
        x = keras.layers.LeakyReLU(_ALPHA, name=f"dense{i}_lrelu")(x)
    x = keras.layers.Reshape(start, name="reshape")(x)
    for stage in range(1, 7):
        channels = width * 2 ** (2 - (stage - 1) // 2)
        x = keras.layers.Conv2D(channels, 3, padding="same", name=f"conv{stage}")(x)
        x = keras.layers.BatchNormalization(**_BN, name=f"bn{stage}")(x)
        x = keras.layers.LeakyReLU(_ALPHA, name=f"lrelu{stage}")(x)
        x = _conv_residual_block(x, f"res{stage}")
        if stage in (2, 4):
            x = keras.layers.UpSampling2D(2, name=f"up{stage // 2}")(x)
    outputs = keras.layers.Conv2D(channels_out, 3, padding="same", activation="sigmoid", name="conv7")(x)
    return keras.Model(inputs, outputs, name="decoder")


def discriminator(image_shape=(28, 28, 1), width=32, hidden=256):
    """3 conv 3x3 + LeakyReLU, 2 max-pools, 4 Dense + LeakyReLU, 1 linear unit.

    Args:
        image_shape: (H, W, C) of the images to judge.
        width: channels of the first convolution (doubled after each pool).
        hidden: units of the dense layers.
    """
    _check_image_shape(image_shape)
    inputs = keras.Input(image_shape, name="images")
    x = inputs
    for i in range(1, 4):
        x = keras.layers.Conv2D(width * 2 ** (i - 1), 3, padding="same", name=f"conv{i}")(x)
        x = keras.layers.LeakyReLU(_ALPHA, name=f"lrelu{i}")(x)
        if i < 3:
            x = keras.layers.MaxPooling2D(2, name=f"pool{i}")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    for i in range(1, 5):
        x = keras.layers.Dense(hidden, name=f"dense{i}")(x)
        x = keras.layers.LeakyReLU(_ALPHA, name=f"dense{i}_lrelu")(x)
    outputs = keras.layers.Dense(1, name="score")(x)
    return keras.Model(inputs, outputs, name="discriminator")
