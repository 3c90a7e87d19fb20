"""Adam with TensorFlow's fused update kernel, and the authors' (PyTorch's) Adam.

Keras 3's Adam updates each variable with about ten separate element-wise ops
(m, v, then the step), every one a pass over memory. The feature MLPs hold
~19 M parameters per layer of 9408 x 2048 (feature-prediction paper, Sec. V), so on a CPU those passes
cost ~80 ms of CPU per step, about 15% of an I-F-FP step at batch 128;
TensorFlow's `ResourceApplyAdam` does the same update in one pass (~20 ms).

Keras and PyTorch put Adam's epsilon in different places. Keras adds it to
sqrt(v) ("epsilon hat", default 1e-7); PyTorch, whose defaults the authors'
code uses, adds 1e-8 to the bias-corrected sqrt(v / (1 - beta_2^t)), Kingma &
Ba's Algorithm 1. The two differ where gradients are as small as epsilon,
which the PS loss's are: the loss network's sigmoid features vary by ~0.01, so
the gradients are mostly 1e-7 to 3e-6 at initialisation and smaller later;
Keras's epsilon then damps the steps and training follows another path (a
lower PS loss after the same epochs on the make-train collection).
`adam(lr, "torch")` is PyTorch's arithmetic, `adam(lr, "keras")` Keras's.
"""

import keras

# The arithmetics `adam` offers (a run config's `adam` field names one).
ADAMS = ("torch", "keras")
# PyTorch's torch.optim.Adam defaults, which the authors' code keeps.
AUTHORS_EPSILON = 1e-8


@keras.saving.register_keras_serializable(package="keras_pae")
class FusedAdam(keras.optimizers.Adam):
    """`keras.optimizers.Adam` whose dense update is one fused TensorFlow kernel.

    Falls back to op-by-op updates for sparse gradients, `amsgrad`,
    non-float32 variables and backends other than TensorFlow.

    Args:
        bias_corrected_epsilon: add `epsilon` to the bias-corrected
            sqrt(v_hat) as PyTorch does (Algorithm 1 of Kingma & Ba), not to
            sqrt(v) as Keras does.
        **kwargs: `keras.optimizers.Adam`'s arguments.
    """

    def __init__(self, *args, bias_corrected_epsilon=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.bias_corrected_epsilon = bool(bias_corrected_epsilon)
        if self.bias_corrected_epsilon and self.amsgrad:
            raise ValueError("FusedAdam: bias_corrected_epsilon is not implemented with amsgrad.")

    def _epsilon(self, beta_2_power, dtype="float32"):
        # var -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps_t) is
        # PyTorch's step when eps_t = eps * sqrt(1 - b2^t), Keras's when eps_t = eps.
        epsilon = keras.ops.convert_to_tensor(self.epsilon, dtype)
        if self.bias_corrected_epsilon:
            epsilon = epsilon * keras.ops.sqrt(1 - beta_2_power)
        return epsilon

    def update_step(self, gradient, variable, learning_rate):
        import tensorflow as tf

        if (
            keras.backend.backend() != "tensorflow"
            or self.amsgrad
            or isinstance(gradient, tf.IndexedSlices)
            or variable.dtype != "float32"
        ):
            if not self.bias_corrected_epsilon:
                return super().update_step(gradient, variable, learning_rate)
            return self._unfused_update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        local_step = tf.cast(self.iterations + 1, tf.float32)
        beta_2_power = tf.pow(tf.cast(self.beta_2, tf.float32), local_step)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(m),
            v=_handle(v),
            beta1_power=tf.pow(tf.cast(self.beta_1, tf.float32), local_step),
            beta2_power=beta_2_power,
            lr=tf.cast(learning_rate, tf.float32),
            beta1=tf.cast(self.beta_1, tf.float32),
            beta2=tf.cast(self.beta_2, tf.float32),
            epsilon=self._epsilon(beta_2_power),
            grad=tf.cast(gradient, tf.float32),
        )

    def _unfused_update_step(self, gradient, variable, learning_rate):
        # Keras's Adam.update_step (no amsgrad) with the bias-corrected epsilon. The betas
        # become tensors of the variable's dtype directly: `ops.cast` of a Python float
        # goes through float32, which would round a float64 variable's bias corrections.
        ops = keras.ops
        dtype = variable.dtype
        gradient = ops.cast(ops.convert_to_tensor(gradient), dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        beta_1_power = ops.power(ops.convert_to_tensor(self.beta_1, dtype), local_step)
        beta_2_power = ops.power(ops.convert_to_tensor(self.beta_2, dtype), local_step)
        index = self._get_variable_index(variable)
        m, v = self._momentums[index], self._velocities[index]
        alpha = ops.cast(learning_rate, dtype) * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
        self.assign_add(m, ops.multiply(ops.subtract(gradient, m), 1 - self.beta_1))
        self.assign_add(v, ops.multiply(ops.subtract(ops.square(gradient), v), 1 - self.beta_2))
        epsilon = self._epsilon(beta_2_power, dtype)
        self.assign_sub(variable, ops.divide(ops.multiply(m, alpha), ops.add(ops.sqrt(v), epsilon)))

    def get_config(self):
        config = super().get_config()
        config["bias_corrected_epsilon"] = self.bias_corrected_epsilon
        return config


def adam(learning_rate, arithmetic="torch"):
    """A `FusedAdam` with PyTorch's arithmetic (the authors') or Keras's.

    Args:
        learning_rate: the learning rate.
        arithmetic: `"torch"`: epsilon 1e-8 added to the bias-corrected
            sqrt(v), as `torch.optim.Adam` and so the authors' code;
            `"keras"`: epsilon 1e-7 added to sqrt(v), as `keras.optimizers.Adam`.
    """
    if arithmetic == "torch":
        return FusedAdam(learning_rate, epsilon=AUTHORS_EPSILON, bias_corrected_epsilon=True)
    if arithmetic == "keras":
        return FusedAdam(learning_rate)
    raise ValueError(f"Unknown Adam arithmetic {arithmetic!r}; valid values are {', '.join(ADAMS)}.")


def _handle(variable):
    # A Keras variable wraps a tf.Variable; under tf.distribute the update
    # receives the per-device component, whose handle is its own.
    if isinstance(variable, keras.Variable):
        variable = variable.value
    return variable.handle
