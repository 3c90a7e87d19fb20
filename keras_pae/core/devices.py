"""Devices and precision: the CPU kind, the distribution strategy, mixed precision, seeds."""

import contextlib
import os

import keras
import tensorflow as tf


def distribution_strategy(name):
    """The `tf.distribute` strategy called `name` (`TrainConfig.distribute`).

    `"mirrored"` replicates the model on every GPU, or, without GPUs, on every
    logical CPU device (one unless configured, as the tests do); the global
    batch is split between the replicas.
    """
    if name == "none":
        return tf.distribute.get_strategy()
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([device.name for device in devices])


BFLOAT16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
# The flags that decide which kernels oneDNN and PyTorch pick.
CPU_FLAGS_SHOWN = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


def _cpu_model_and_flags(cpuinfo):
    """The first CPU's model name (or None) and ISA flags (x86 "flags", Arm "Features") in `cpuinfo`.

    Linux's /proc/cpuinfo; `(None, set())` where there is no such file.
    """
    model, flags = None, None
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() in ("flags", "Features") and flags is None:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags or set()


def cpu_kind(cpuinfo="/proc/cpuinfo"):
    """The CPU's model name and the ISA flags that decide the kernels, e.g. "AMD EPYC (avx2 fma)".

    Speed figures travel only with it. A cap set by `ONEDNN_MAX_CPU_ISA`
    (how an AVX-512 machine emulates an AVX2 one) is named too.
    """
    model, flags = _cpu_model_and_flags(cpuinfo)
    kind = f"{model or 'unknown CPU'} ({' '.join(f for f in CPU_FLAGS_SHOWN if f in flags) or 'no AVX2'})"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    return f"{kind}, oneDNN capped at {cap}" if cap else kind


def process_seconds(stat="/proc/self/stat", uptime="/proc/uptime"):
    """Seconds since this process started (Linux's `/proc`), or None where it cannot tell.

    A job's printed wall time counts from here, so it includes Python's and
    TensorFlow's start-up (about 6 s) as `time` would.
    """
    try:
        with open(stat) as f:
            # Field 22 is the start time in clock ticks after boot; the command name before ")" may hold spaces.
            started = int(f.read().rpartition(")")[2].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open(uptime) as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError):
        return None


def cpu_has_bfloat16(cpuinfo="/proc/cpuinfo"):
    """Whether the CPU has bfloat16 dot-product instructions.

    AVX512_BF16 or AMX-BF16 on x86, BF16 on Arm: oneDNN then multiplies
    bfloat16 matrices at about twice the float32 rate (measured here: a
    2048-cube matmul at 412 against 210 GFLOPS). Read from `cpuinfo`'s flags
    (Linux); False where there is no such file.
    """
    return bool(BFLOAT16_CPU_FLAGS & _cpu_model_and_flags(cpuinfo)[1])


def mixed_precision_policy():
    """The dtype policy `--mixed-precision` trains under on this machine.

    `mixed_float16` on a GPU (with loss scaling), `mixed_bfloat16` on a CPU
    with bfloat16 instructions (no loss scaling: bfloat16 has float32's
    range). Raises a ValueError on any other CPU, where both are emulated and
    slower than float32.
    """
    if tf.config.list_physical_devices("GPU"):
        return "mixed_float16"
    if cpu_has_bfloat16():
        return "mixed_bfloat16"
    raise ValueError(
        "--mixed-precision needs a GPU (float16) or a CPU with bfloat16 instructions (AVX512_BF16, AMX or Arm BF16); "
        "this machine has neither, so train in float32."
    )


@contextlib.contextmanager
def precision_policy(mixed):
    """`mixed_precision_policy()` while building and training, if `mixed`.

    The loss network and the losses stay float32 whatever the policy.
    """
    if not mixed:
        yield
        return
    with dtype_policy(mixed_precision_policy()):
        yield


@contextlib.contextmanager
def dtype_policy(policy):
    """Keras's global dtype policy set to `policy` inside the block, restored after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def set_seeds(seed, deterministic=True):
    """Seeds Python, NumPy and TensorFlow; `deterministic` also makes TensorFlow's ops deterministic."""
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
