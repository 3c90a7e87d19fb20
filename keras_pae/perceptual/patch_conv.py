"""A convolution with a faster CPU path for outputs of a few pixels: patches times the kernel."""

import keras
from keras import ops

# Outputs of at most this many pixels per image take the matrix-product path.
MAX_OUTPUT_PIXELS = 4


@keras.saving.register_keras_serializable(package="keras_pae", name="PatchesConv2D")
class Conv2D(keras.layers.Conv2D):
    """`keras.layers.Conv2D` computing outputs of at most 2x2 pixels as one matrix product.

    The 64x64 image encoder's last convolution (feature-prediction paper, Fig. 3: 6x6x128 to
    2x2x256, 4x4 kernel, stride 2) has four output pixels per image. TensorFlow's CPU kernels
    took 5-7 ms for its forward and backward pass at batch 16, 17-22 ms at batch 64 and
    25-30 ms at batch 128; as the image's patches (`tf.image.extract_patches`) times the kernel
    seen as a (4 * 4 * 128, 256) matrix, 3.7, 11 and 22-23 ms. Larger outputs were slower
    that way (10x10 to 4x4 at batch 128: 78-83 ms against 95), so they keep Keras's computation.

    Same weights, same outputs and gradients up to float rounding; any other padding,
    dilation, grouping, layout, precision or backend takes Keras's computation. Named
    `Conv2D` on purpose: `.weights.h5` files key each layer by its class name, so weight files
    written with `keras.layers.Conv2D` (finished runs) load unchanged.
    """

    def convolution_op(self, inputs, kernel):
        # Keras's `call` adds the bias and the activation to what this returns.
        height, width = self.compute_output_shape(inputs.shape)[1:3]
        if (
            keras.backend.backend() != "tensorflow"
            or self.padding != "valid"
            or tuple(self.dilation_rate) != (1, 1)
            or self.groups != 1
            or self.data_format != "channels_last"
            or self.compute_dtype != "float32"
            or height is None
            or width is None
            or height * width > MAX_OUTPUT_PIXELS
        ):
            return super().convolution_op(inputs, kernel)
        import tensorflow as tf

        kernel_height, kernel_width, channels, filters = kernel.shape
        patches = tf.image.extract_patches(
            inputs, [1, kernel_height, kernel_width, 1], [1, *self.strides, 1], [1, 1, 1, 1], "VALID"
        )
        # Each patch is ordered (row, column, channel), as the kernel's first three axes.
        size = kernel_height * kernel_width * channels
        outputs = ops.matmul(ops.reshape(patches, (-1, size)), ops.reshape(kernel, (size, filters)))
        return ops.reshape(outputs, (-1, height, width, filters))
