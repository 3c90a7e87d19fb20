"""AlexNet's `features[:5]` as Keras layers: the weight-carrying trunk of the loss network.

Feature-prediction paper, Section IV and Fig. 2: torchvision's AlexNet up to
and including the second ReLU, then a sigmoid. `loss_network` wraps it into
the frozen model p; `convert_alexnet` and `pretrain_loss_network` fill it.
"""

import keras

from keras_pae.core.initializers import torch_default

FEATURE_CHANNELS = 192


@keras.saving.register_keras_serializable(package="keras_pae", name="SpaceToDepthConv2D")
class Conv2D(keras.layers.Conv2D):
    """A strided `Conv2D` computed as a stride-1 convolution of space-to-depth blocks.

    Named `Conv2D` on purpose: Keras's `.weights.h5` files key each layer by
    its class name, so this name keeps every weight file written with
    `keras.layers.Conv2D` (the shipped Fashion-MNIST weights, converted
    ImageNet weights, finished runs) loadable.

    AlexNet's first convolution (11x11, stride 4, 3 -> 64 channels) is slow in
    TensorFlow's CPU kernels, above all its input gradient, which PS pays on
    every decoded batch: at batch 128 of 64x64 images, forward plus input
    gradient took 74 ms, against 30 ms this way. The input's s x s blocks
    become channels (`tf.nn.space_to_depth`) and the kernel, zero-padded to a
    multiple of s, is rearranged to match; the result is the same convolution
    up to float rounding. The weights are Conv2D's, in Conv2D's layout, so
    weight files are unchanged. It falls back to Conv2D's computation where the
    rearrangement does not apply (another backend, unequal strides, "same"
    padding, dilation, groups, channels first, unknown sides).
    """

    def convolution_op(self, inputs, kernel):
        stride = self.strides[0]
        height, width = inputs.shape[1:3]
        if (
            keras.backend.backend() != "tensorflow"
            or stride == 1
            or tuple(self.strides) != (stride, stride)
            or self.padding != "valid"
            or tuple(self.dilation_rate) != (1, 1)
            or self.groups != 1
            or self.data_format != "channels_last"
            or height is None
            or width is None
        ):
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf

        kernel_height, kernel_width, channels, filters = kernel.shape
        blocks_high, blocks_wide = -(-kernel_height // stride), -(-kernel_width // stride)
        # The rows and columns the outputs read, rounded up to whole blocks:
        # extra ones are cropped, missing ones (zeros) only meet the kernel's zero padding.
        out_height, out_width = (height - kernel_height) // stride + 1, (width - kernel_width) // stride + 1
        rows, columns = (out_height - 1 + blocks_high) * stride, (out_width - 1 + blocks_wide) * stride
        inputs = inputs[:, :rows, :columns]
        if rows > height or columns > width:
            inputs = tf.pad(inputs, [[0, 0], [0, max(rows - height, 0)], [0, max(columns - width, 0)], [0, 0]])
        kernel = tf.pad(
            kernel,
            [[0, blocks_high * stride - kernel_height], [0, blocks_wide * stride - kernel_width], [0, 0], [0, 0]],
        )
        # (bh, s, bw, s, c, f) -> (bh, bw, s, s, c, f): space_to_depth orders channels (row, column, c).
        kernel = tf.reshape(kernel, (blocks_high, stride, blocks_wide, stride, channels, filters))
        kernel = tf.reshape(
            tf.transpose(kernel, (0, 2, 1, 3, 4, 5)), (blocks_high, blocks_wide, stride * stride * channels, filters)
        )
        return tf.nn.conv2d(tf.nn.space_to_depth(inputs, stride), kernel, strides=1, padding="VALID")


def alexnet_trunk(seed=0):
    """Builds the weight-carrying layers: the canonical layout of weight files.

    Args:
        seed: seed of the (torch-default-like) random initialisation.

    Returns:
        An unbuilt `keras.Sequential` mapping images to sigmoid features.
    """
    conv1_kernel, conv1_bias = torch_default(3 * 11 * 11, seed)
    conv2_kernel, conv2_bias = torch_default(64 * 5 * 5, seed + 2)
    # Torch pads symmetrically; padding="same" with stride 4 would pad
    # asymmetrically, hence explicit ZeroPadding2D + "valid".
    return keras.Sequential(
        [
            keras.layers.ZeroPadding2D(2, name="pad1"),
            Conv2D(  # this module's: the space-to-depth computation
                64, 11, strides=4, padding="valid", name="conv1",
                kernel_initializer=conv1_kernel, bias_initializer=conv1_bias,
            ),
            keras.layers.ReLU(name="relu1"),
            keras.layers.MaxPooling2D(3, strides=2, padding="valid", name="pool1"),
            keras.layers.ZeroPadding2D(2, name="pad2"),
            keras.layers.Conv2D(
                FEATURE_CHANNELS, 5, strides=1, padding="valid", name="conv2",
                kernel_initializer=conv2_kernel, bias_initializer=conv2_bias,
            ),
            keras.layers.ReLU(name="relu2"),
            keras.layers.Activation("sigmoid", name="sigmoid"),
        ],
        name="alexnet_trunk",
    )
