"""PyTorch's default initialisation of convolutions and dense layers, in Keras."""

import keras


def torch_default(fan_in, seed=None):
    """`(kernel, bias)` initializers drawing as PyTorch's Conv/Linear layers do by default.

    `kaiming_uniform(a=sqrt(5))` is uniform in +-1/sqrt(fan_in), which
    `VarianceScaling(1/3, "fan_in", "uniform")` gives for the kernel; the bias
    has the same bound. Keras's and PyTorch's fan_in agree for Dense and Conv2D
    kernels and for Conv2DTranspose's, which both take from the kernel's
    output-channel axis (height x width x output channels).

    Args:
        fan_in: the layer's fan-in, as above.
        seed: seeds both (the bias with `seed + 1`); None draws from Keras's
            global seed (`keras.utils.set_random_seed`).
    """
    bound = 1.0 / fan_in**0.5
    kernel = keras.initializers.VarianceScaling(scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed)
    bias = keras.initializers.RandomUniform(-bound, bound, seed=None if seed is None else seed + 1)
    return kernel, bias
