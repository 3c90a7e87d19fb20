"""A transposed convolution that computes a 1x1 input as one matrix product."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_pae", name="MatmulConv2DTranspose")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` with a fast path for a 1x1 input.

    The 64x64 image decoder's first transposed convolution (SPEC §3) maps a
    1x1x1024 map to 5x5x128: each output pixel is a linear map of the one
    input vector, i.e. a single (1024 x 3200) matrix product. TensorFlow's CPU
    kernels computed it as a general transposed convolution at 64 ms per step
    (forward and backward, batch 128), the costliest layer of the decoder; as
    a matrix product, 23 ms. Same weights, same outputs up to float
    rounding; any other input size (larger images), padding, dilation or
    layout takes Keras's computation. (A sub-pixel rewrite of the larger
    transposed convolutions, measured too, was slower for all but the last.)

    Named `Conv2DTranspose` on purpose: Keras's `.weights.h5` files key each
    layer by its class name, so this name keeps weight files written with
    `keras.layers.Conv2DTranspose` (finished runs) loadable.
    """

    def call(self, inputs):
        if (
            tuple(inputs.shape[1:3]) != (1, 1)
            or self.padding != "valid"
            or self.output_padding is not None
            or tuple(self.dilation_rate) != (1, 1)
            or self.data_format != "channels_last"
        ):
            return super().call(inputs)
        # Kernel (kh, kw, filters, channels): out[b, i, j, f] = sum_c x[b, c] * kernel[i, j, f, c],
        # whatever the stride (one input pixel: the output is the kernel's size).
        kernel_height, kernel_width, filters, channels = self.kernel.shape
        matrix = ops.reshape(ops.transpose(self.kernel, (3, 0, 1, 2)), (channels, kernel_height * kernel_width * filters))
        outputs = ops.matmul(ops.reshape(inputs, (-1, channels)), matrix)
        outputs = ops.reshape(outputs, (-1, kernel_height, kernel_width, filters))
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs
