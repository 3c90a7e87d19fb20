"""Twin runs: a Keras model and its PyTorch equivalent trained side by side, compared every step.

    python bench/twin.py [--steps 300] [--batch-size 16] [--procedures I-I-PS] [--gammas 0 0.01]
                         [--dtype float64] [--feature-cache] [--adam keras]

Both twins start from the Keras model's initial weights (`copy_keras_to_torch`), take the same
batches in the same order and, for a VAE, the same reparameterisation noise epsilon. The Keras
twin steps through the model's own `train_step` with `train`'s optimizer (`adam(lr, "torch")`),
the PyTorch twin (`bench/torch_models.py`) through a plain `torch.optim.Adam` loop, as the
authors' code does. After every step the script compares the loss, every gradient, every weight
after the optimizer step and BatchNorm's moving statistics; after the last, the validation loss
and the embeddings (mu) in inference mode. It prints a markdown table: per procedure and gamma,
the first step at which any compared tensor differs by more than `--threshold` (relative), which
one and by how much, and the first step of each kind (a kind is no longer compared once it has
differed, which keeps long runs cheap; the loss always is).

The relative difference of a Keras tensor a and its PyTorch twin b (in PyTorch's layout) is
max|a - b| / max(max|a|, max|b|): one number per tensor, scaled by the tensor's largest entry, so
entries near zero do not blow it up; 0 when both are all zeros. The exception is the bias of a
convolution that a BatchNorm follows: its exact gradient is zero (the BatchNorm subtracts the
batch mean), each twin computes rounding noise, and that is measured against the largest entry
of the same layer's kernel gradient.

The data is the `make train` LunarLander collection (60 rollouts of 150 frames with
`--reset-on-termination`, rendered once and cached): batches in a seeded random order from its
first 80% (whole rollouts), the validation images from the rest.
"""

import argparse
import dataclasses
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_pae  # noqa: E402,F401 (first: its TensorFlow settings must precede TensorFlow)
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.torch_models import TorchProcedureModel  # noqa: E402
from keras_pae.core.devices import dtype_policy  # noqa: E402
from keras_pae.core.optimizers import adam  # noqa: E402
from keras_pae.data import lunarlander, pipeline  # noqa: E402
from keras_pae.perceptual import feature_cache  # noqa: E402
from keras_pae.perceptual.loss_network import alexnet_features  # noqa: E402
from keras_pae.perceptual.perceptual_autoencoder import build_perceptual_autoencoder  # noqa: E402
from keras_pae.perceptual.procedures import Procedure  # noqa: E402

PROCEDURES = ("I-I-PW", "I-I-PS", "F-I-PW", "F-I-PS", "I-F-FP", "F-F-FP")
KINDS = ("loss", "gradient", "weight", "statistic")


@dataclasses.dataclass
class Pair:
    """One Keras variable and the PyTorch tensor it maps to.

    Args:
        name: `network/layer/weight` of the Keras variable.
        keras: the Keras variable.
        torch: the PyTorch parameter or buffer.
        to_torch: maps the Keras value (numpy) to PyTorch's element order (C order), as a
            view where it can: its shape may split an axis of PyTorch's (see `torch_shaped`).
        gradient_scale: for the bias of a convolution that a BatchNorm follows, the `Pair`
            of that convolution's kernel. Such a bias has an exact gradient of zero (the
            BatchNorm subtracts the batch mean), so what each twin computes is rounding
            noise; it is measured against the kernel's gradient, not against itself.
    """

    name: str
    keras: object
    torch: object
    to_torch: object
    gradient_scale: object = None


def _transpose(*axes):
    return lambda value: np.transpose(value, axes)


def _identity(value):
    return value


def _rows_hwc_to_chw(shape):
    """A Dense kernel whose input is a flattened (h, w, c) map, to a Linear weight reading (c, h, w)."""
    height, width, channels = shape
    return lambda k: k.reshape(height, width, channels, -1).transpose(3, 2, 0, 1)


def _columns_hwc_to_chw(shape):
    """A Dense kernel whose output is reshaped to (h, w, c), to a Linear weight writing (c, h, w)."""
    height, width, channels = shape
    return lambda k: k.reshape(-1, height, width, channels).transpose(3, 1, 2, 0)


def _bias_hwc_to_chw(shape):
    height, width, channels = shape
    return lambda b: b.reshape(height, width, channels).transpose(2, 0, 1)


def torch_shaped(value, torch_tensor):
    """`value` (a `Pair.to_torch` result) reshaped to `torch_tensor`'s shape, contiguous.

    Raises a ValueError unless `value`'s axes split PyTorch's, in order.
    """
    shape = tuple(torch_tensor.shape)
    axes = list(value.shape)
    for side in shape:
        product = 1
        while axes and product < side:
            product *= axes.pop(0)
        if product != side:
            raise ValueError(f"Keras gives {value.shape}, PyTorch holds {shape}.")
    if any(side != 1 for side in axes):
        raise ValueError(f"Keras gives {value.shape}, PyTorch holds {shape}.")
    return np.ascontiguousarray(value).reshape(shape)


# Keras Conv2D kernels are (h, w, in, out), PyTorch's Conv2d weights (out, in, h, w); Keras
# Conv2DTranspose kernels are (h, w, out, in), PyTorch's ConvTranspose2d weights (in, out, h, w):
# the same axis permutation, and no spatial flip (both are the adjoint of the same correlation).
_KERNEL = _transpose(3, 2, 0, 1)
_DENSE = _transpose(1, 0)


def _layers(network, kind):
    return [layer for layer in network.layers if isinstance(layer, kind)]


def _modules(module, kind):
    return [m for m in module.modules() if isinstance(m, kind)]


def _dense_pairs(prefix, layer, linear, kernel=_DENSE, bias=_identity, batch_norm_follows=False):
    kernel_pair = Pair(f"{prefix}/{layer.name}/kernel", layer.kernel, linear.weight, kernel)
    bias_pair = Pair(
        f"{prefix}/{layer.name}/bias", layer.bias, linear.bias, bias, kernel_pair if batch_norm_follows else None
    )
    return [kernel_pair, bias_pair]


def _batch_norm_pairs(prefix, layers, modules):
    pairs = []
    for layer, module in zip(layers, modules, strict=True):
        # Keras's momentum is the share the old statistic keeps, PyTorch's the share the batch gets.
        if abs((1 - layer.momentum) - module.momentum) > 1e-12 or abs(layer.epsilon - module.eps) > 1e-12:
            raise ValueError(
                f"{prefix}/{layer.name}: momentum {layer.momentum} / epsilon {layer.epsilon} do not match "
                f"PyTorch's {module.momentum} / {module.eps}."
            )
        for keras_name, torch_tensor in (
            ("gamma", module.weight), ("beta", module.bias),
            ("moving_mean", module.running_mean), ("moving_variance", module.running_var),
        ):
            pairs.append(Pair(f"{prefix}/{layer.name}/{keras_name}", getattr(layer, keras_name), torch_tensor, _identity))
    return pairs


def _feature_shape(keras_model):
    return tuple(keras_model.loss_network.output_shape[1:])


def weight_pairs(keras_model, torch_model):
    """Every weight and BatchNorm statistic of a `PerceptualAutoencoder` and its PyTorch twin.

    Covers the loss network, the encoder (both latent heads) and the decoder. Dense layers
    that read or write a flattened feature map are permuted between Keras's (h, w, c) and
    PyTorch's (c, h, w) orders.

    Args:
        keras_model: a `PerceptualAutoencoder` (64 + 16n square images).
        torch_model: the `TorchProcedureModel` of the same procedure, z and image size.

    Returns:
        A list of `Pair`.
    """
    procedure = keras_model.procedure
    pairs = []
    if keras_model.loss_network is not None:
        if any(isinstance(layer, keras.layers.Normalization) for layer in keras_model.loss_network.layers):
            raise ValueError("The PyTorch twin has no ImageNet normalisation; build with imagenet_normalize=False.")
        trunk = keras_model.loss_network.get_layer("alexnet_trunk")
        convs = _modules(torch_model.loss_network, nn.Conv2d)
        for layer, conv in zip((trunk.get_layer("conv1"), trunk.get_layer("conv2")), convs, strict=True):
            pairs += _dense_pairs("loss_network", layer, conv, kernel=_KERNEL)

    encoder, decoder = keras_model.encoder, keras_model.decoder
    if procedure.encoder == "image":
        convs = [encoder.get_layer(f"conv{i}") for i in range(4)]
        for layer, conv in zip(convs, _modules(torch_model.encoder, nn.Conv2d), strict=True):
            pairs += _dense_pairs("encoder", layer, conv, kernel=_KERNEL, batch_norm_follows=True)
        pairs += _batch_norm_pairs(
            "encoder", [encoder.get_layer(f"bn{i}") for i in range(4)], _modules(torch_model.encoder, nn.BatchNorm2d)
        )
        head_kernel = _rows_hwc_to_chw(tuple(encoder.get_layer("flatten").input.shape[1:]))
    else:
        (linear,) = _modules(torch_model.encoder, nn.Linear)
        pairs += _dense_pairs("encoder", encoder.get_layer("hidden"), linear, kernel=_rows_hwc_to_chw(_feature_shape(keras_model)))
        head_kernel = _DENSE
    pairs += _dense_pairs("encoder", encoder.get_layer("mu"), torch_model.mu, kernel=head_kernel)
    pairs += _dense_pairs("encoder", encoder.get_layer("logvar"), torch_model.logvar, kernel=head_kernel)

    if procedure.decoder == "image":
        linears = _modules(torch_model.decoder, nn.Linear)
        grid = tuple(decoder.get_layer("reshape").output.shape[1:])
        pairs += _dense_pairs(
            "decoder", decoder.get_layer("dense"), linears[0], kernel=_columns_hwc_to_chw(grid), bias=_bias_hwc_to_chw(grid)
        )
        deconvs = [decoder.get_layer(f"deconv{i}") for i in range(4)]
        for i, (layer, deconv) in enumerate(zip(deconvs, _modules(torch_model.decoder, nn.ConvTranspose2d), strict=True)):
            pairs += _dense_pairs("decoder", layer, deconv, kernel=_KERNEL, batch_norm_follows=i < 3)
        pairs += _batch_norm_pairs(
            "decoder", [decoder.get_layer(f"bn{i}") for i in range(3)], _modules(torch_model.decoder, nn.BatchNorm2d)
        )
    else:
        hidden, output = _modules(torch_model.decoder, nn.Linear)
        shape = _feature_shape(keras_model)
        pairs += _dense_pairs("decoder", decoder.get_layer("hidden"), hidden)
        pairs += _dense_pairs(
            "decoder", decoder.get_layer("features"), output, kernel=_columns_hwc_to_chw(shape), bias=_bias_hwc_to_chw(shape)
        )
    return pairs


def copy_keras_to_torch(keras_model, torch_model):
    """Sets every weight and BatchNorm statistic of `torch_model` to `keras_model`'s.

    Args:
        keras_model: a `PerceptualAutoencoder`.
        torch_model: its `TorchProcedureModel` (same procedure, z and image size).

    Returns:
        The `Pair`s copied (see `weight_pairs`).
    """
    pairs = weight_pairs(keras_model, torch_model)
    # Every PyTorch parameter and statistic must be covered: a missed one would
    # keep PyTorch's own random draw and the twins would differ from the start.
    # (The PyTorch model always holds a loss network; I-I-PW never runs it.)
    covered = {id(pair.torch) for pair in pairs}
    missed = [
        name for name, tensor in _torch_tensors(torch_model)
        if id(tensor) not in covered and (keras_model.loss_network is not None or not name.startswith("loss_network."))
    ]
    if missed:
        raise ValueError(f"No Keras weight maps to PyTorch's {', '.join(missed)}.")
    with torch.no_grad():
        for pair in pairs:
            try:
                value = torch_shaped(pair.to_torch(keras.ops.convert_to_numpy(pair.keras)), pair.torch)
            except ValueError as error:
                raise ValueError(f"{pair.name}: {error}") from None
            pair.torch.copy_(torch.from_numpy(value))
    return pairs


def copy_torch_to_keras(torch_model, keras_model):
    """Sets every weight and BatchNorm statistic of `keras_model` to `torch_model`'s.

    The inverse of `copy_keras_to_torch`: each `Pair.to_torch` is a permutation of the Keras
    tensor's elements, so it is applied to the element indices and the PyTorch values are put
    back where they came from.
    """
    pairs = weight_pairs(keras_model, torch_model)
    for pair in pairs:
        shape = tuple(pair.keras.shape)
        indices = torch_shaped(pair.to_torch(np.arange(int(np.prod(shape))).reshape(shape)), pair.torch)
        value = np.empty(int(np.prod(shape)), keras.backend.standardize_dtype(pair.keras.dtype))
        value[indices.ravel()] = pair.torch.detach().cpu().numpy().ravel()
        pair.keras.assign(value.reshape(shape))
    return pairs


def _torch_tensors(torch_model):
    for name, parameter in torch_model.named_parameters():
        yield name, parameter
    for name, buffer in torch_model.named_buffers():
        if not name.endswith("num_batches_tracked"):
            yield name, buffer


def _largest_magnitude(x):
    return float(torch.linalg.vector_norm(x, ord=float("inf"))) if x.numel() else 0.0


def relative_difference(a, b, scale=None):
    """max|a - b| / max(max|a|, max|b|), or / `scale` when given; 0 when a and b are all zeros.

    `b` may hold `a`'s elements in `a`'s C order under another shape (see `Pair.to_torch`).
    """
    # In PyTorch: its element-wise kernels take the transposed views without copies, on all cores.
    a, b = torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b))
    if a.shape != b.shape:
        b = b.reshape(a.shape)
    difference = _largest_magnitude(a - b)
    if difference == 0:
        return 0.0
    if scale is None:
        scale = max(_largest_magnitude(a), _largest_magnitude(b))
    return float(difference / scale)


def to_torch_images(images):
    """NHWC numpy -> NCHW torch (of the same dtype)."""
    return torch.from_numpy(np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2)))


class Twin:
    """A Keras `PerceptualAutoencoder` and its PyTorch twin, stepped together.

    Args:
        procedure: a procedure name.
        gamma: KL weight.
        z_dim: latent size.
        loss_weights: the loss network's weights (see `alexnet_features`).
        learning_rate: Adam's learning rate (both).
        arithmetic: the Keras optimizer's Adam arithmetic (`"torch"`, `train`'s default, or `"keras"`).
        seed: seeds both frameworks' initialisation (the PyTorch twin's is overwritten by the copy).
        loss_network: an already built Keras loss network (of `dtype`) to share.
        image_size: side of the square images.
        dtype: `"float32"` (the kernels `train` runs) or `"float64"` (both twins in double
            precision: Keras's float64 paths, e.g. its own BatchNormalization and op-by-op Adam).
    """

    def __init__(
        self, procedure, gamma=0.0, z_dim=8, loss_weights="fashion_mnist", learning_rate=1e-3,
        arithmetic="torch", seed=0, loss_network=None, image_size=64, dtype="float32",
    ):
        if dtype not in ("float32", "float64"):
            raise ValueError(f"Twin dtype must be float32 or float64; got {dtype!r}.")
        keras.utils.set_random_seed(seed)
        torch.manual_seed(seed)
        self.gamma = float(gamma)
        self.dtype = dtype
        shape = (image_size, image_size, 3)
        floatx = keras.config.floatx()
        keras.config.set_floatx(dtype)  # the dtype of the networks' keras.Input, which casts what they take
        with dtype_policy(dtype):
            if loss_network is None and Procedure.parse(procedure).needs_loss_network:
                # build_perceptual_autoencoder would build it in float32 whatever the policy.
                loss_network = alexnet_features(shape, weights=loss_weights)
            self.keras_model = build_perceptual_autoencoder(
                procedure, shape, z_dim=z_dim, gamma=gamma, loss_network=loss_network, seed=seed,
            )
            # Inside the float64 block, so the learning rate is a float64 variable too.
            self.keras_model.compile(optimizer=adam(learning_rate, arithmetic))
        keras.config.set_floatx(floatx)
        self.torch_model = TorchProcedureModel(procedure, z_dim, image_size).to(getattr(torch, dtype)).train()
        self.pairs = copy_keras_to_torch(self.keras_model, self.torch_model)
        self.torch_optimizer = torch.optim.Adam(
            [p for p in self.torch_model.parameters() if p.requires_grad], lr=learning_rate
        )
        self.steps = 0
        self._noise = None
        self._keras_gradients = {}
        # Instance attributes shadow the methods: the model's train_step stays the one users run.
        self.keras_model.reparameterisation_noise = self._fixed_noise
        apply = self.keras_model.optimizer.apply

        def recording_apply(gradients, variables):
            self._keras_gradients = {id(v): keras.ops.convert_to_numpy(g) for g, v in zip(gradients, variables)}
            return apply(gradients, variables)

        self.keras_model.optimizer.apply = recording_apply

    def _fixed_noise(self, shape):
        if self._noise is None:
            raise RuntimeError("Twin: a variational step needs `noise`.")
        if tuple(self._noise.shape) != tuple(shape):
            raise ValueError(f"Twin: noise of shape {self._noise.shape} for z of shape {tuple(shape)}.")
        return keras.ops.convert_to_tensor(self._noise)

    def step(self, images, noise=None, keras_features=None, kinds=KINDS):
        """One training step of both; returns `{quantity: relative difference}`.

        Args:
            images: NHWC batch in [0, 1].
            noise: (batch, z) epsilon, needed when gamma > 0.
            keras_features: p(images) to feed the Keras twin as the cache does (Keras's
                flattened order); None lets it compute them, as the PyTorch twin always does.
            kinds: the kinds of quantity to compare (see `KINDS`); the loss always is.
        """
        images = np.asarray(images, self.dtype)
        self._noise = None if noise is None else np.asarray(noise, self.dtype)
        for metric in self.keras_model.metrics:
            metric.reset_state()
        data = images if keras_features is None else {"images": images, "features": keras_features}
        keras_loss = float(self.keras_model.train_step(data)["loss"])

        self.torch_optimizer.zero_grad(set_to_none=True)
        torch_noise = None if noise is None else torch.from_numpy(self._noise)
        torch_loss, _, _ = self.torch_model.losses(to_torch_images(images), self.gamma, noise=torch_noise)
        torch_loss.backward()
        torch_gradients = {id(p): None if p.grad is None else p.grad.numpy().copy() for p in self.torch_model.parameters()}
        # torch.optim.Adam keeps its step count, hence its bias corrections, in the default
        # dtype: float32 bias corrections would stand out against float64 arithmetic.
        default_dtype = torch.get_default_dtype()
        torch.set_default_dtype(getattr(torch, self.dtype))
        try:
            self.torch_optimizer.step()
        finally:
            torch.set_default_dtype(default_dtype)
        self.steps += 1

        differences = {"loss": relative_difference(keras_loss, torch_loss.item())}
        trainable = {id(v) for v in self.keras_model.trainable_weights}
        for pair in self.pairs:
            if id(pair.keras) in trainable and "gradient" in kinds:
                keras_gradient = self._keras_gradients.get(id(pair.keras))
                torch_gradient = torch_gradients[id(pair.torch)]
                if (keras_gradient is None) != (torch_gradient is None):
                    differences[f"gradient {pair.name}"] = float("inf")  # one twin trains it, the other not
                elif keras_gradient is not None:
                    scale = None
                    if pair.gradient_scale is not None:
                        scale = np.abs(torch_gradients[id(pair.gradient_scale.torch)]).max()
                    differences[f"gradient {pair.name}"] = relative_difference(
                        pair.to_torch(keras_gradient), torch_gradient, scale
                    )
            kind = "statistic" if "moving" in pair.name else "weight"
            if kind in kinds:
                differences[f"{kind} {pair.name}"] = self._difference(pair)
        return differences

    def _difference(self, pair):
        return relative_difference(
            pair.to_torch(keras.ops.convert_to_numpy(pair.keras)), pair.torch.detach().numpy()
        )

    def evaluate(self, images, noise=None):
        """Inference mode: `{"validation loss": ..., "embedding": ...}` relative differences.

        The validation loss is `test_step`'s (for a VAE with `noise` as epsilon), the embedding mu.
        """
        images = np.asarray(images, self.dtype)
        self._noise = None if noise is None else np.asarray(noise, self.dtype)
        keras_loss, _, _ = self.keras_model.compute_losses(images, training=False)
        keras_mu, _ = self.keras_model.encode(images, training=False)
        self.torch_model.eval()
        try:
            with torch.no_grad():
                torch_images = to_torch_images(images)
                torch_noise = None if noise is None else torch.from_numpy(self._noise)
                torch_loss, _, _ = self.torch_model.losses(torch_images, self.gamma, noise=torch_noise)
                torch_mu, _ = self.torch_model.encode(torch_images)
        finally:
            self.torch_model.train()
        return {
            "validation loss": relative_difference(float(keras_loss), torch_loss.item()),
            "embedding": relative_difference(keras.ops.convert_to_numpy(keras_mu), torch_mu.numpy()),
        }


def kind_of(quantity):
    """`"loss"`, `"gradient"`, `"weight"` or `"statistic"`: the first word of a quantity."""
    return quantity.split(" ")[0]


def worst(differences, kind=None):
    """`(quantity, difference)` of the largest difference (of `kind`, if given)."""
    items = [(q, d) for q, d in differences.items() if kind is None or kind_of(q) == kind]
    return max(items, key=lambda item: item[1]) if items else (None, 0.0)


def lunarlander_data(validation_fraction=0.2):
    """The `make train` LunarLander collection's autoencoder run: (train, validation) uint8 images."""
    run = lunarlander.generate_run("autoencoder", rollouts=60, steps=150, reset_on_termination=True, progress=False)
    split = pipeline.validation_split(len(run.images), run.rollouts, validation_fraction)
    return np.asarray(run.images[:split]), np.asarray(run.images[split:])


def model_images(images):
    """uint8 -> float32 in [0, 1], as `pipeline.image_dataset` converts them."""
    return keras.ops.convert_to_numpy(pipeline.to_model_images(keras.ops.convert_to_tensor(images)))


def run_twin(procedure, gamma, train_images, validation_images, args, loss_network=None, cache=None):
    """Steps one twin through `args.steps` batches.

    Returns `(first, evaluation, steps)`: `first[kind]` is `(step, quantity, difference)` of the
    first difference of that kind above `args.threshold`, or None; a kind is no longer compared
    once it has one (the loss always is). `evaluation` is `Twin.evaluate`'s after the last step.
    """
    twin = Twin(
        procedure, gamma, z_dim=args.z_dim, learning_rate=args.learning_rate, arithmetic=args.adam,
        seed=args.seed, loss_network=loss_network, dtype=args.dtype,
    )
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(train_images))
    first = dict.fromkeys(KINDS)
    for step in range(1, args.steps + 1):
        start = ((step - 1) * args.batch_size) % (len(order) - args.batch_size + 1)
        indices = order[start:start + args.batch_size]
        noise = rng.standard_normal((args.batch_size, args.z_dim)) if gamma > 0 else None
        features = None
        if cache is not None and twin.keras_model.procedure.needs_loss_network:
            features = np.asarray(cache[indices], np.float32) + feature_cache.OFFSET
        kinds = [kind for kind in KINDS if first[kind] is None]
        differences = twin.step(model_images(train_images[indices]), noise, keras_features=features, kinds=kinds)
        for kind in kinds:
            quantity, value = worst(differences, kind)
            if value > args.threshold:
                first[kind] = (step, quantity, value)
    images = model_images(validation_images[: args.validation_images])
    noise = rng.standard_normal((len(images), args.z_dim)) if gamma > 0 else None
    return first, twin.evaluate(images, noise), twin.steps


def _fmt(value):
    return f"{value:.1e}"


def _first(entry):
    return "none" if entry is None else f"{entry[0]}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procedures", nargs="+", default=list(PROCEDURES), help="(default: all six)")
    parser.add_argument("--gammas", nargs="+", type=float, default=[0.0, 0.01], help="(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=300, help="(default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="(default: %(default)s)")
    parser.add_argument("--z-dim", type=int, default=8, help="(default: %(default)s)")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="(default: %(default)s)")
    parser.add_argument("--adam", choices=("torch", "keras"), default="torch", help="the Keras twin's Adam (default: %(default)s)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32", help="both twins' (default: %(default)s)")
    parser.add_argument("--loss-weights", default="fashion_mnist", help="the loss network's (default: %(default)s)")
    parser.add_argument("--threshold", type=float, default=1e-5, help="relative difference that counts (default: %(default)s)")
    parser.add_argument("--validation-images", type=int, default=256, help="(default: %(default)s)")
    parser.add_argument(
        "--feature-cache", action="store_true",
        help="feed the Keras twin p(X) from the float16 feature cache, as `train --feature-cache auto` does",
    )
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="(default: %(default)s)")
    args = parser.parse_args(argv)

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train_images, validation_images = lunarlander_data()
    floatx = keras.config.floatx()
    keras.config.set_floatx(args.dtype)
    with dtype_policy(args.dtype):
        loss_network = alexnet_features((64, 64, 3), weights=args.loss_weights)
    keras.config.set_floatx(floatx)
    cache = None
    if args.feature_cache:
        cache = feature_cache.cached_features(loss_network, train_images, tempfile.mkdtemp(prefix="twin_features_"))
    print(
        f"# {args.steps} steps of batch {args.batch_size} in {args.dtype}, z {args.z_dim}, lr {args.learning_rate}, "
        f"Keras Adam '{args.adam}', loss network '{args.loss_weights}'"
        + (", Keras fed the float16 feature cache" if cache is not None else "")
        + f"; {len(train_images)} LunarLander training images, seed {args.seed}; threshold {args.threshold:g} relative; "
        f"TensorFlow {tf.__version__}, PyTorch {torch.__version__}, Keras {keras.__version__}",
        flush=True,
    )
    rows = []
    for procedure in args.procedures:
        name = Procedure.parse(procedure).name
        for gamma in args.gammas:
            keras.backend.clear_session()
            tick = time.perf_counter()
            needs = Procedure.parse(name).needs_loss_network
            first, evaluation, steps = run_twin(
                name, gamma, train_images, validation_images, args, loss_network if needs else None, cache
            )
            rows.append((name, gamma, first, evaluation, steps))
            print(f"  {name} gamma {gamma:g}: {first}; {evaluation} ({time.perf_counter() - tick:.0f} s)", file=sys.stderr, flush=True)
    print()
    print(
        f"| procedure | gamma | first step > {args.threshold:g} | where, by how much | loss departs at "
        "| gradient | weight | BN statistic | validation loss at the end | embedding (mu) at the end |"
    )
    print("|---|---:|---|---|---|---:|---:|---:|---:|---:|")
    for name, gamma, first, evaluation, steps in rows:
        diverged = [entry for entry in first.values() if entry is not None]
        if diverged:
            step, quantity, value = min(diverged, key=lambda entry: (entry[0], -entry[2]))
            where = f"{step}", f"{quantity}: {_fmt(value)}"
        else:
            where = f"none in {steps} steps", ""
        loss = first["loss"]
        loss = "none" if loss is None else f"{loss[0]} ({_fmt(loss[2])})"
        statistic = _first(first["statistic"]) if Procedure.parse(name).encoder == "image" or Procedure.parse(name).decoder == "image" else "—"
        print(
            f"| {name} | {gamma:g} | {where[0]} | {where[1]} | {loss} | {_first(first['gradient'])} "
            f"| {_first(first['weight'])} | {statistic} | {_fmt(evaluation['validation loss'])} "
            f"| {_fmt(evaluation['embedding'])} |"
        )
    print(f"\nTotal {time.perf_counter() - started:.0f} s.")


if __name__ == "__main__":
    main()
