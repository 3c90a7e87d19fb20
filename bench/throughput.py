"""Training and inference throughput, Keras against the authors' PyTorch models.

    python bench/throughput.py [--steps 8] [--batch-size 128] [--procedures I-I-PS I-F-FP]

Every procedure trains on the same random 64x64 images at the same batch size:
the Keras model through its real `train_step` (`model.fit` with the optimizer
and `tf.data` pipeline `train` uses), the PyTorch equivalent (`bench/torch_models.py`) with
a plain Adam loop as the authors' code has. Images/second are timed over
`--rounds` interleaved rounds of `--steps` steps after `--warmup` steps
(tracing, allocation); the best round counts, so another process sharing the
CPU for a while does not decide a ratio. Also timed: the
same Keras training fed cached loss-network features (where the procedure uses
them), the LunarLander generator and encoding (the embedding model's
inference). The loss network has random weights: its speed does not depend on
them. Each procedure's arithmetic per image (`training_flop`: its convolutions
and dense layers, forward and backward) gives the FLOP rate it reaches. Prints
a markdown table.
"""

import argparse
import contextlib
import functools
import os
import sys
import tempfile
import time
import typing

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras_pae  # noqa: E402,F401 (first: its TensorFlow settings must precede TensorFlow)

import numpy as np  # noqa: E402

PROCEDURES = ("I-I-PW", "I-I-PS", "F-I-PW", "F-I-PS", "I-F-FP", "F-F-FP")


class KerasTrainer:
    """`model.fit` on `procedure`, built and warmed up once, timed per call.

    Args:
        procedure: procedure name.
        images: uint8 array (N, 64, 64, 3).
        args: the parsed flags.
        features: `feature_cache.cached_features` of `images` to feed, or None.
    """

    def __init__(self, procedure, images, args, features=None):
        import keras

        from keras_pae import build_perceptual_autoencoder
        from keras_pae.data import pipeline
        from keras_pae.perceptual.procedures import Procedure

        try:  # the optimizer `train` uses
            from keras_pae.core.optimizers import adam as Adam
        except ImportError:  # the code before it existed
            try:
                from keras_pae.core.optimizers import FusedAdam as Adam
            except ImportError:
                Adam = keras.optimizers.Adam
        keras.utils.set_random_seed(0)
        self.mixed_precision = args.mixed_precision
        with _precision_policy(self.mixed_precision):
            self.model = build_perceptual_autoencoder(procedure, images.shape[1:], z_dim=args.z_dim, loss_weights="random", seed=0)
            self.model.compile(optimizer=Adam(1e-3), jit_compile=args.jit_compile)
        kwargs = dict(shuffle=True, seed=0)
        if features is not None:
            kwargs.update(features=features, with_images=Procedure.parse(procedure).needs_images_given_features)
        self.dataset = pipeline.image_dataset(images, args.batch_size, **kwargs).repeat()
        self.batch_size = args.batch_size
        self.run(args.warmup)

    def run(self, steps):
        import keras

        times = []

        class Timer(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                times.append(time.perf_counter())

        # One untimed step first: fit's own start-up is not training.
        with _precision_policy(self.mixed_precision):
            self.model.fit(self.dataset, epochs=1, steps_per_epoch=steps + 1, callbacks=[Timer()], shuffle=False, verbose=0)
        return steps * self.batch_size / (times[-1] - times[0])


def _precision_policy(mixed):
    """`train`'s --mixed-precision dtype policy (a no-op context when off)."""
    if not mixed:
        return contextlib.nullcontext()
    from keras_pae.core.devices import precision_policy

    return precision_policy(True)


class TorchTrainer:
    """The PyTorch model's plain Adam loop on `procedure`, as the authors train."""

    def __init__(self, procedure, images, args):
        import torch

        from bench.torch_models import TorchProcedureModel

        torch.manual_seed(0)
        self.model = TorchProcedureModel(procedure, args.z_dim, images.shape[1]).train()
        self.optimizer = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad], lr=1e-3)
        self.data = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0).contiguous()
        self.batch_size = args.batch_size
        self.step = 0
        # Under --mixed-precision, PyTorch's own CPU mixed precision (bfloat16 autocast).
        self.autocast = functools.partial(torch.autocast, "cpu", dtype=torch.bfloat16, enabled=args.mixed_precision)
        self.run(args.warmup)

    def run(self, steps):
        batches = len(self.data) // self.batch_size
        start_time = time.perf_counter()
        for _ in range(steps):
            start = (self.step % batches) * self.batch_size
            self.step += 1
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                loss = self.model.loss(self.data[start:start + self.batch_size])
            loss.backward()
            self.optimizer.step()
        return steps * self.batch_size / (time.perf_counter() - start_time)


def best_rates(trainers, args):
    """Each trainer's best images/second over `args.rounds` interleaved rounds.

    Interleaving and keeping the best round make the comparison fair when
    another process shares the CPU for part of the run.
    """
    rates = [[] for _ in trainers]
    for _ in range(args.rounds):
        for rate, trainer in zip(rates, trainers):
            rate.append(trainer.run(args.steps))
    return [max(rate) for rate in rates]


def encoding(procedure, images, args):
    """Images/second of the embedding model's inference (batch 512, as `train` encodes)."""
    import keras

    from keras_pae import build_perceptual_autoencoder
    from keras_pae.data import pipeline

    keras.backend.clear_session()
    model = build_perceptual_autoencoder(procedure, images.shape[1:], z_dim=args.z_dim, loss_weights="random")
    embedder = model.embedding_model()
    dataset = pipeline.image_dataset(images, 512)
    embedder.predict(dataset.take(1), verbose=0)
    start = time.perf_counter()
    embedder.predict(dataset, verbose=0)
    return len(images) / (time.perf_counter() - start)


def generator(args):
    """Frames/second of the LunarLander generator (rendering, uncached)."""
    from keras_pae.data import lunarlander

    start = time.perf_counter()
    run = lunarlander.generate_run(
        rollouts=args.rollouts, steps=args.rollout_steps, cache_dir=False, progress=False, seed=123
    )
    return len(run.images) / (time.perf_counter() - start)


class Row(typing.NamedTuple):
    """One procedure's measurements: images/second and floating-point operations per image."""

    name: str
    keras: float
    torch: float | None = None
    cached: float | None = None  # Keras fed cached p(X); None where not measured
    flop: float | None = None  # per image, one training step of the model `keras` timed
    cached_flop: float | None = None  # the same with cached p(X)

    @property
    def default(self):
        """(images/second, FLOP per image) at the default: cached p(X) where measured."""
        if self.cached is not None:
            return self.cached, self.cached_flop
        return self.keras, self.flop


def target_lines(rows):
    """The issue's two targets, where the run measured their procedures.

    Each procedure counts at its default: cached p(X) where it has a cached row.
    The FP line also gives the ratio of the two procedures' arithmetic: the
    speed-up I-F-FP would have if both ran at the same FLOP rate.
    """
    default = {row.name: row.default for row in rows}
    lines = []
    for row in rows:
        if row.name == "I-I-PS" and row.torch:
            lines.append(f"- I-I-PS, Keras (default) / PyTorch: {row.default[0] / row.torch:.2f}× (target ≥ 1.5×)")
    if "I-F-FP" in default and "I-I-PS" in default:
        (fp_rate, fp_flop), (ps_rate, ps_flop) = default["I-F-FP"], default["I-I-PS"]
        line = f"- I-F-FP (default) / I-I-PS (default): {fp_rate / ps_rate:.2f}× (target ≥ 2×)"
        if fp_flop and ps_flop:
            work = ps_flop / fp_flop
            line += (
                f"; I-I-PS does {work:.2f}× I-F-FP's arithmetic per image, so 2× needs I-F-FP "
                f"at {2 / work:.2f}× I-I-PS's FLOP/s (measured: {fp_rate * fp_flop / (ps_rate * ps_flop):.2f}×)"
            )
        lines.append(line)
    return lines


def layer_multiply_adds(network):
    """Multiply-adds per example of each convolution and dense layer of `network`.

    Returns `[(layer, multiply-adds, reads the network's input)]`, nested
    models included. A convolution does one multiply-add per kernel weight per
    output position; a transposed convolution per kernel weight per input
    position; a dense layer one per kernel weight.
    """
    import keras

    def leaves(model):
        for layer in model.layers:
            yield from leaves(layer) if isinstance(layer, keras.Model) else [layer]

    inputs = {id(tensor) for tensor in network.inputs}
    counts = []
    for layer in leaves(network):
        if not hasattr(layer, "kernel"):
            continue
        kernel = int(np.prod(layer.kernel.shape))
        if isinstance(layer, keras.layers.Dense):
            positions = 1
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            positions = int(np.prod(layer.input.shape[1:3]))
        elif isinstance(layer, keras.layers.Conv2D):
            positions = int(np.prod(layer.output.shape[1:3]))
        else:
            raise TypeError(f"Cannot count the arithmetic of {type(layer).__name__} layer {layer.name!r}.")
        counts.append((layer, positions * kernel, id(layer.input) in inputs))
    return counts


def training_flop(model, cached=False):
    """Floating-point operations per image of one training step of a `PerceptualAutoencoder`.

    Counts the convolutions and dense layers (everything else is a few
    percent at most), two operations per multiply-add: the forward pass, the
    weight gradient of every trained layer and the input gradient of every
    layer backpropagation goes through. The loss network runs forward on the
    images unless `cached` (p(X) read from the feature cache), and forward plus
    input gradient on decoded images for a PS loss.
    """
    multiply_adds = 0
    for network in (model.encoder, model.decoder):
        for layer, count, reads_input in layer_multiply_adds(network):
            # A plain autoencoder computes but never trains its logvar head.
            trained = model.variational or layer.name != "logvar"
            # Nothing needs the gradient of the data an encoder reads.
            input_gradient = trained and not (network is model.encoder and reads_input)
            multiply_adds += count * (1 + trained + input_gradient)
    if model.loss_network is not None:
        loss_network = sum(count for _, count, _ in layer_multiply_adds(model.loss_network))
        passes = (0 if cached else 1) + (2 if model.procedure.loss == "perceptual" else 0)
        multiply_adds += loss_network * passes
    return 2 * multiply_adds


def _mixed_policy():
    from keras_pae.core.devices import mixed_precision_policy

    return mixed_precision_policy()


def _fmt(value):
    return "—" if value is None else f"{value:,.0f}"


def _ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.2f}×"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--procedures", nargs="+", default=list(PROCEDURES), help="(default: all six)")
    parser.add_argument("--batch-size", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per round (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best counts (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: %(default)s)")
    parser.add_argument("--z-dim", type=int, default=64, help="(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of TensorFlow and PyTorch (default: the cores, %(default)s)")
    parser.add_argument("--jit-compile", action="store_true", help="compile the Keras train step with XLA")
    parser.add_argument(
        "--mixed-precision", action="store_true",
        help="train the Keras models as train.py --mixed-precision does (bfloat16 on a CPU with bfloat16 "
        "instructions) and PyTorch's under bfloat16 autocast",
    )
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--no-cache", action="store_true", help="skip the cached-feature rows")
    parser.add_argument("--rollouts", type=int, default=4, help="LunarLander rollouts to render; 0 skips (default: %(default)s)")
    parser.add_argument("--rollout-steps", type=int, default=150, help="(default: %(default)s)")
    parser.add_argument("--encode-images", type=int, default=4096, help="images to encode; 0 skips (default: %(default)s)")
    args = parser.parse_args(argv)
    if min(args.warmup, args.steps, args.rounds) < 1:
        parser.error("--warmup, --steps and --rounds must be >= 1")

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    if args.mixed_precision:
        try:
            _mixed_policy()
        except ValueError as error:
            parser.error(str(error))
    from keras_pae.perceptual.procedures import Procedure

    try:
        from keras_pae.perceptual import feature_cache as feature_cache_module
    except ImportError:  # the code before feature caching existed
        feature_cache_module = None
    torch = None
    if not args.no_torch:
        import torch

        torch.set_num_threads(args.threads)

    started = time.perf_counter()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4 * args.batch_size, 64, 64, 3), dtype=np.uint8)
    cache = None
    if feature_cache_module is not None and not args.no_cache:
        cache_dir = tempfile.mkdtemp(prefix="bench_features_")
        from keras_pae import alexnet_features

        cache = feature_cache_module.cached_features(alexnet_features(images.shape[1:], weights="random"), images, cache_dir)

    print(
        f"# {args.batch_size} images per step; best of {args.rounds} interleaved rounds of {args.steps} steps after "
        f"{args.warmup} warm-up steps; "
        f"{args.threads} threads on {os.cpu_count()} cores; TensorFlow {tf.__version__}"
        + (f", PyTorch {torch.__version__}" if torch else "")
        + f"; XLA {'on' if args.jit_compile else 'off'}"
        + (f"; Keras under {_mixed_policy()}" if args.mixed_precision else "")
        + f"; load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    rows = []
    for procedure in args.procedures:
        import keras

        name = Procedure.parse(procedure).name
        keras.backend.clear_session()
        trainers = [KerasTrainer(name, images, args)]
        if torch is not None:
            trainers.append(TorchTrainer(name, images, args))
        if cache is not None and Procedure.parse(name).needs_loss_network:
            trainers.append(KerasTrainer(name, images, args, features=cache))
        rates = iter(best_rates(trainers, args))
        keras_rate = next(rates)
        torch_rate = next(rates) if torch is not None else None
        cached_rate = next(rates, None)
        model = trainers[0].model
        rows.append(Row(
            name, keras_rate, torch_rate, cached_rate, training_flop(model),
            training_flop(model, cached=True) if cached_rate is not None else None,
        ))
        print(f"  {name}: keras {keras_rate:.0f}, torch {_fmt(torch_rate)}, cached {_fmt(cached_rate)} img/s", file=sys.stderr, flush=True)

    print()
    print(
        "| procedure | Keras img/s | PyTorch img/s | Keras / PyTorch | Keras, cached p(X) img/s | cached / uncached "
        "| MFLOP/img (default) | Keras GFLOP/s (default) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        rate, flop = row.default
        print(
            f"| {row.name} | {_fmt(row.keras)} | {_fmt(row.torch)} | {_ratio(row.keras, row.torch)} "
            f"| {_fmt(row.cached)} | {_ratio(row.cached, row.keras)} | {_fmt(flop / 1e6)} | {_fmt(rate * flop / 1e9)} |"
        )
    print()
    for line in target_lines(rows):
        print(line)
    print()
    print("| other | images/s |")
    print("|---|---:|")
    if args.encode_images:
        encode = rng.integers(0, 256, (args.encode_images, 64, 64, 3), dtype=np.uint8)
        for procedure, label in (("I-F-FP", "encoding, image encoder"), ("F-F-FP", "encoding, feature encoder (p inside)")):
            print(f"| {label} | {_fmt(encoding(procedure, encode, args))} |", flush=True)
    if args.rollouts:
        print(f"| LunarLander generator, {args.rollouts} rollouts × {args.rollout_steps} steps | {_fmt(generator(args))} |")
    print(f"\nTotal {time.perf_counter() - started:.0f} s; load average {os.getloadavg()[0]:.2f} at the end.")


if __name__ == "__main__":
    main()
