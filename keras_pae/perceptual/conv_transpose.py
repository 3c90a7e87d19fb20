"""A transposed convolution with faster CPU paths: a 1x1 input as one matrix
product, a kernel that is a whole number of strides as a sub-pixel convolution."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_pae", name="MatmulConv2DTranspose")
class Conv2DTranspose(keras.layers.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` with two faster computations.

    The 64x64 image decoder's first transposed convolution (feature-prediction paper, Fig. 3) maps a
    1x1x1024 map to 5x5x128: each output pixel is a linear map of the one
    input vector, i.e. a single (1024 x 3200) matrix product. TensorFlow's CPU
    kernels computed it as a general transposed convolution at 64 ms per step
    (forward and backward, batch 128), the costliest layer of the decoder; as
    a matrix product, 23 ms. The product takes the kernel as it is stored, the
    transpose left to the matrix multiplication (at batch 16, 9 -> 6 ms).

    A kernel whose sides are m times the stride s (the decoder's 6x6, stride 2) computes
    its forward pass as a sub-pixel convolution: each of the s x s output
    phases is an m x m convolution of the input with one slice of the kernel,
    so one stride-1 convolution to s * s * filters channels followed by
    depth-to-space. TensorFlow's CPU transposed convolution was slowest where
    the output has few channels: the last layer (30x30x32 to 64x64x3) took
    23.7 ms forward at batch 128, the sub-pixel form about a third of
    that (I-I-PW and I-I-PS train 3-8% faster). Its gradients are
    the transposed convolution's own, which TensorFlow computes fast (a
    strided convolution and a filter gradient), by a custom gradient.

    Same weights, same outputs and gradients up to float rounding; any other
    shape, padding, dilation, layout or backend takes Keras's computation.

    Named `Conv2DTranspose` on purpose: Keras's `.weights.h5` files key each
    layer by its class name, so this name keeps weight files written with
    `keras.layers.Conv2DTranspose` (finished runs) loadable.
    """

    def call(self, inputs):
        if (
            self.padding != "valid"
            or self.output_padding is not None
            or tuple(self.dilation_rate) != (1, 1)
            or self.data_format != "channels_last"
        ):
            return super().call(inputs)
        stride = self.strides[0]
        if tuple(inputs.shape[1:3]) != (1, 1):
            if (
                keras.backend.backend() != "tensorflow"
                or stride == 1
                or tuple(self.strides) != (stride, stride)
                or self.kernel_size[0] % stride
                or self.kernel_size[1] % stride
            ):
                return super().call(inputs)
            return self._finish(_subpixel_transposed_convolution(inputs, ops.convert_to_tensor(self.kernel), stride))
        # Kernel (kh, kw, filters, channels): out[b, i, j, f] = sum_c x[b, c] * kernel[i, j, f, c],
        # whatever the stride (one input pixel: the output is the kernel's size).
        kernel_height, kernel_width, filters, channels = self.kernel.shape
        # Rows (kh, kw, filters), columns channels: a reshape, no copy.
        matrix = ops.reshape(self.kernel, (kernel_height * kernel_width * filters, channels))
        inputs = ops.reshape(inputs, (-1, channels))
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            # The product with the transpose inside the kernel: transposing the 13 MB kernel and its
            # gradient on every step took a third of the layer's time at batch 16.
            outputs = tf.matmul(inputs, ops.convert_to_tensor(matrix), transpose_b=True)
        else:
            outputs = ops.matmul(inputs, ops.transpose(matrix))
        return self._finish(ops.reshape(outputs, (-1, kernel_height, kernel_width, filters)))

    def _finish(self, outputs):
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        if self.activation is not None:
            return self.activation(outputs)
        return outputs


def _subpixel_transposed_convolution(inputs, kernel, stride):
    """`tf.nn.conv2d_transpose(inputs, kernel, stride, "VALID")` for kernel sides that are multiples of `stride`.

    Output phase (a, b), the pixels (stride * i + a, stride * j + b), is
    sum_{u, v} inputs[i - u, j - v] kernel[stride * u + a, stride * v + b]:
    a stride-1 convolution of the input, padded by m - 1, with the flipped
    sub-kernel. All phases are one convolution to stride * stride * filters
    channels, interleaved by depth-to-space. The gradients are the
    transposed convolution's.
    """
    import tensorflow as tf

    kernel = tf.identity(kernel)  # a tensor, not the variable: the custom gradient takes it as an input
    kernel_height, kernel_width, filters, channels = kernel.shape
    m_high, m_wide = kernel_height // stride, kernel_width // stride
    strides = [1, stride, stride, 1]

    @tf.custom_gradient
    def transposed_convolution(inputs, kernel):
        # (m_high, s, m_wide, s, filters, channels) -> (u, v, channels, a, b, filters), u and v flipped.
        phases = tf.reshape(kernel, (m_high, stride, m_wide, stride, filters, channels))
        phases = tf.reverse(tf.transpose(phases, (0, 2, 5, 1, 3, 4)), [0, 1])
        phases = tf.reshape(phases, (m_high, m_wide, channels, stride * stride * filters))
        padded = tf.pad(inputs, [[0, 0], [m_high - 1, m_high - 1], [m_wide - 1, m_wide - 1], [0, 0]])
        outputs = tf.nn.depth_to_space(tf.nn.conv2d(padded, phases, 1, "VALID"), stride)

        def gradient(upstream):
            d_inputs = tf.nn.conv2d(upstream, kernel, strides, "VALID")
            d_kernel = tf.raw_ops.Conv2DBackpropFilter(
                input=upstream, filter_sizes=tf.shape(kernel), out_backprop=inputs, strides=strides, padding="VALID"
            )
            return d_inputs, d_kernel

        return outputs, gradient

    return transposed_convolution(inputs, kernel)
