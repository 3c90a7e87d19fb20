"""Training speed as users get it: `train.py`'s own path over whole epochs, against PyTorch.

    python bench/epochs.py [--isa both] [--procedures I-I-PS I-F-FP] [--epochs 4] [--limit 5120]

Each procedure trains through `keras_pae.train` (the real `tf.data` pipeline,
the feature cache, `fit` with every callback and checkpoint) on the LunarLander
collection cut to `--limit` frames, with the run's default settings but the
flags below. Its speed is the training images per second of each epoch after
the first (the first traces the graphs), as `train` itself records them
(`seconds_per_epoch`), given as the median and the spread over those epochs.
The PyTorch reference trains the authors' model (`bench/torch_models.py`) on
the same images, batch size and epochs with a plain shuffled Adam loop, timed
the same way. Each row is also read against the machine's limit: the
procedure's arithmetic per image (`throughput.training_flop`) times its rate,
as a share of a 2048-cube float32 matmul measured in the same run.

`--isa avx2` runs everything as on a CPU with AVX2 only (oneDNN's
`ONEDNN_MAX_CPU_ISA=AVX2`, PyTorch's `ATEN_CPU_CAPABILITY=avx2`), `--isa
native` with what the CPU has, `--isa both` one after the other (each in a
fresh process, since both variables are read when the libraries load).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras_pae  # noqa: E402,F401 (first: its TensorFlow settings must precede TensorFlow)
from keras_pae.core.devices import cpu_kind  # noqa: E402

ISA_ENVIRONMENTS = {
    "native": {},
    "avx2": {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
}
def summarise(rates):
    """(median, min, max, spread) of per-epoch rates; spread = (max - min) / median."""
    ordered = sorted(rates)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else (ordered[n // 2 - 1] + ordered[n // 2]) / 2
    return median, ordered[0], ordered[-1], (ordered[-1] - ordered[0]) / median


def matmul_peak(size=2048, repeats=5):
    """Best float32 GFLOP/s of a `size`-cube matmul in TensorFlow and in PyTorch (None if absent)."""
    import numpy as np
    import tensorflow as tf

    a = tf.constant(np.random.default_rng(0).random((size, size), dtype=np.float32))
    matmul = tf.function(lambda x: tf.matmul(x, x))
    matmul(a).numpy()
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).numpy()
        best = max(best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    torch_best = None
    try:
        import torch
    except ImportError:
        return best, None
    b = torch.from_numpy(np.array(a))
    torch.mm(b, b)
    torch_best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(b, b)
        torch_best = max(torch_best, 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best, torch_best


def keras_epochs(procedure, args, out):
    """Images/second of each epoch of `train`, and the model (for its arithmetic)."""
    import keras

    from keras_pae.perceptual.config import TrainConfig
    from keras_pae.perceptual.training import load_run, train

    keras.backend.clear_session()
    config = TrainConfig(
        procedure=procedure, dataset="lunarlander", limit=args.limit, epochs=args.epochs,
        batch_size=args.batch_size, z_dim=args.z_dim, loss_weights=args.loss_weights, predictor_epochs=0,
        patience=args.epochs, feature_cache=args.feature_cache, out=out,
    )
    summary = train(config, verbose=0)
    seconds = summary["seconds_per_epoch"]
    rates = [summary["train_images"] / s for s in seconds[1:]]
    return rates, load_run(out), summary


def torch_epochs(procedure, images, args):
    """Images/second of each epoch of the PyTorch equivalent on the same images (uint8 NHWC)."""
    import torch

    from bench.torch_models import TorchProcedureModel

    torch.manual_seed(0)
    model = TorchProcedureModel(procedure, args.z_dim, images.shape[1]).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    data = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    rates = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        order = torch.randperm(len(data))
        for first in range(0, len(data), args.batch_size):
            batch = data[order[first:first + args.batch_size]].float().div_(255.0)
            optimizer.zero_grad(set_to_none=True)
            model.loss(batch).backward()
            optimizer.step()
        if epoch:
            rates.append(len(data) / (time.perf_counter() - start))
    return rates


def measure(args):
    """One process: every procedure under the current ISA; returns a JSON-able dict."""
    import tensorflow as tf

    from bench.throughput import training_flop
    from keras_pae.data import pipeline, registry
    from keras_pae.perceptual.config import TrainConfig

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    torch = None
    if not args.no_torch:
        import torch

        torch.set_num_threads(args.threads)
    tf_peak, torch_peak = matmul_peak()
    config = TrainConfig(dataset="lunarlander", limit=args.limit).validate()
    data = registry.autoencoder_data(config, progress=False)
    split = pipeline.validation_split(len(data.images), data.groups, config.validation_fraction)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_epochs_") as tmp:
        for procedure in args.procedures:
            rates, model, summary = keras_epochs(procedure, args, os.path.join(tmp, procedure))
            cached = args.feature_cache == "auto" and model.procedure.needs_loss_network
            row = {
                "procedure": procedure,
                "keras": rates,
                "flop": training_flop(model, cached=cached),
                "train_images": summary["train_images"],
            }
            if torch is not None:
                row["torch"] = torch_epochs(procedure, data.images[:split], args)
            rows.append(row)
            print(f"  {procedure}: keras {summarise(rates)[0]:.0f} img/s"
                  + (f", torch {summarise(row['torch'])[0]:.0f} img/s" if torch is not None else ""),
                  file=sys.stderr, flush=True)
    return {
        "cpu": cpu_kind(),
        "isa": {k: os.environ.get(k, "") for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "TF_ENABLE_ONEDNN_OPTS")},
        "threads": args.threads,
        "versions": {"tensorflow": tf.__version__, "torch": torch.__version__ if torch else None},
        "matmul_gflops": {"tensorflow": tf_peak, "torch": torch_peak},
        "rows": rows,
    }


def report(result, args):
    """Markdown: the machine, one row per procedure, the targets."""
    isa = ", ".join(f"{k}={v}" for k, v in result["isa"].items() if v) or "none set"
    peak = result["matmul_gflops"]
    lines = [
        f"## {result['cpu']}, {result['threads']} threads; ISA variables: {isa}",
        "",
        f"2048-cube float32 matmul: TensorFlow {peak['tensorflow']:.0f} GFLOP/s"
        + (f", PyTorch {peak['torch']:.0f} GFLOP/s" if peak["torch"] else "")
        + f". {args.epochs} epochs of {result['rows'][0]['train_images']} images at batch {args.batch_size}; "
        f"images/second of epochs 2-{args.epochs}, median [min-max], spread = (max - min) / median.",
        "",
        "| procedure | train.py img/s | epoch spread | PyTorch img/s | train.py / PyTorch | MFLOP/img "
        "| GFLOP/s | share of TF matmul peak |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    medians = {}
    for row in result["rows"]:
        median, low, high, spread = summarise(row["keras"])
        medians[row["procedure"]] = median
        torch_cell, ratio = "—", "—"
        if row.get("torch"):
            t_median, t_low, t_high, _ = summarise(row["torch"])
            torch_cell, ratio = f"{t_median:.0f} [{t_low:.0f}-{t_high:.0f}]", f"{median / t_median:.2f}×"
            medians[row["procedure"] + "/torch"] = t_median
        gflops = median * row["flop"] / 1e9
        lines.append(
            f"| {row['procedure']} | {median:.0f} [{low:.0f}-{high:.0f}] | {100 * spread:.0f}% | {torch_cell} | {ratio} "
            f"| {row['flop'] / 1e6:.0f} | {gflops:.0f} | {100 * gflops / peak['tensorflow']:.0f}% |"
        )
    lines.append("")
    for procedure in ("I-I-PS", "I-F-FP"):
        if procedure + "/torch" in medians:
            lines.append(
                f"- {procedure} train.py / PyTorch: {medians[procedure] / medians[procedure + '/torch']:.2f}× "
                "(target ≥ 1.0× under AVX2, ≥ 1.5× under AVX-512)"
            )
    if "I-F-FP" in medians and "I-I-PS" in medians:
        lines.append(f"- I-F-FP / I-I-PS: {medians['I-F-FP'] / medians['I-I-PS']:.2f}× (target ≥ 1.45×)")
    worst = max(summarise(row["keras"])[3] for row in result["rows"])
    lines.append(f"- largest epoch spread: {100 * worst:.0f}% (target < 15%)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--isa", choices=("native", "avx2", "both"), default="both", help="(default: %(default)s)")
    parser.add_argument("--procedures", nargs="+", default=["I-I-PS", "I-F-FP"], help="(default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=4, help="(default: %(default)s)")
    parser.add_argument("--limit", type=int, default=5120, help="LunarLander frames (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=128, help="(default: %(default)s)")
    parser.add_argument("--z-dim", type=int, default=64, help="(default: %(default)s)")
    parser.add_argument("--loss-weights", default="fashion_mnist", help="(default: %(default)s)")
    parser.add_argument("--feature-cache", choices=("auto", "off"), default="auto", help="(default: %(default)s)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="(default: the cores, %(default)s)")
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch")
    parser.add_argument("--json", default=None, help="also write the measurements to this file")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch traces and is not counted")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    if args.worker:
        print(json.dumps(measure(args)))
        return 0
    started = time.perf_counter()
    results = []
    for isa in ("native", "avx2") if args.isa == "both" else (args.isa,):
        forwarded = [a for a in (argv if argv is not None else sys.argv[1:])]
        env = {**os.environ, **ISA_ENVIRONMENTS[isa]}
        process = subprocess.run(
            [sys.executable, os.path.abspath(__file__), *forwarded, "--isa", isa, "--worker"],
            env=env, stdout=subprocess.PIPE, text=True, check=True,
        )
        result = json.loads(process.stdout.strip().splitlines()[-1])
        result["isa_setting"] = isa
        results.append(result)
        print(report(result, args) + "\n", flush=True)
    print(f"Total {time.perf_counter() - started:.0f} s.")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
