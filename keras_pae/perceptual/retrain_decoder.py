"""Decoder retraining: how much of the image do frozen embeddings keep?

    keras-pae retrain-decoder RUN [RUN ...] --epochs 20 --out DIR

Perceptual-loss paper, Table VIII and Fig. 6: the decoder of each trained
model is retrained with pixel-wise loss while its encoder stays frozen, then
the L1 reconstruction error on the test images is compared with the best
model's (100% = as good as the best). Image-decoding runs (I-I-*, F-I-*) keep
training their own decoder; feature-decoding runs (I-F-FP, F-F-FP) get a fresh
image decoder. Writes `DIR/retrain.json`, `DIR/report.md` and an image grid
(originals, then each run before and after retraining).
"""

import argparse
import json
import os
import sys

import keras
import numpy as np
from keras import ops

from keras_pae.core import cli
from keras_pae.core.plots import save_image_grid
from keras_pae.core.tables import markdown_table
from keras_pae.data import pipeline, registry
from keras_pae.perceptual import networks
from keras_pae.perceptual.config import TrainConfig
from keras_pae.perceptual.perceptual_autoencoder import PerceptualAutoencoder
from keras_pae.perceptual.plots import test_images
from keras_pae.perceptual.training import load_run

REPORT_FILE = "report.md"
RESULT_FILE = "retrain.json"
GRID_FILE = "reconstructions.png"


def pixel_model(model):
    """A pixel-wise autoencoder sharing `model`'s frozen encoder (and loss network).

    Args:
        model: a trained `PerceptualAutoencoder`.
    """
    procedure = model.procedure
    if procedure.decoder == "image":
        decoder = model.decoder
    else:
        decoder = networks.image_decoder(model.encoder.output_shape[0][-1], model.image_shape)
    model.encoder.trainable = False
    name = ("I" if procedure.encoder == "image" else "F") + "-I-PW"
    retrained = PerceptualAutoencoder(
        model.encoder, decoder, model.loss_network, procedure=name, gamma=0.0, seed=model.seed
    )
    retrained(ops.zeros((1, *model.image_shape)))
    return retrained


def l1_error(model, dataset):
    """Mean absolute pixel error of `model`'s reconstructions over a dataset of images."""
    total, count = 0.0, 0
    for images in dataset:
        reconstructions = np.asarray(model(images, training=False))
        total += float(np.abs(reconstructions - np.asarray(images)).sum())
        count += int(np.prod(reconstructions.shape))
    return total / count


def retrain_decoder(run_dir, epochs=20, batch_size=None, learning_rate=1e-3, verbose="auto"):
    """Retrains one run's decoder with pixel loss on its frozen embeddings.

    Args:
        run_dir: a directory written by `train.py`.
        epochs: maximum epochs (early stopping on the validation images,
            best weights kept).
        batch_size: images per step (None: the run's).
        learning_rate: Adam's learning rate.
        verbose: `fit`'s verbosity.

    Returns:
        `(result, model_before, model_after)`: the L1 errors before and after
        on the test images, and both models for drawing.
    """
    before = load_run(run_dir)
    config = _config(run_dir)
    keras.utils.set_random_seed(config.seed)
    after = pixel_model(load_run(run_dir))
    after.compile(optimizer=keras.optimizers.Adam(learning_rate))
    fit = dict(image_size=config.image_size, fit=registry.info(config.dataset).fit)
    batch_size = batch_size or config.batch_size
    data = registry.autoencoder_data(config, progress=False)
    split = pipeline.validation_split(len(data.images), data.groups, config.validation_fraction)
    test = registry.test_data(config, progress=False)
    test_batches = pipeline.image_dataset(test.images, 256, **fit)
    verbose = cli.fit_verbosity(verbose)
    after.fit(
        pipeline.image_dataset(data.images[:split], batch_size, shuffle=True, seed=config.seed, **fit),
        validation_data=pipeline.image_dataset(data.images[split:], batch_size, **fit),
        epochs=epochs,
        shuffle=False,
        callbacks=[keras.callbacks.EarlyStopping(patience=max(3, epochs // 10), restore_best_weights=True)],
        verbose=verbose,
    )
    result = {
        "run": os.path.abspath(run_dir),
        "procedure": config.procedure,
        "z_dim": config.z_dim,
        "gamma": config.gamma,
        "l1_before": l1_error(before, test_batches) if before.procedure.decoder == "image" else None,
        "l1_after": l1_error(after, test_batches),
    }
    return result, before, after


def _config(run_dir):
    return TrainConfig.load(os.path.join(run_dir, "config.json"))


def relative_performance(results):
    """Each run's L1 error relative to the best: best / own, 1.0 for the best (Table VIII)."""
    best = min(r["l1_after"] for r in results)
    return [best / r["l1_after"] for r in results]


def _draw(rows, config, path, count=8):
    images = test_images(config, count)
    lines = [("original", images)]
    for result, before, after in rows:
        if before.procedure.decoder == "image":
            lines.append((f"{result['procedure']} before", before(images)))
        lines.append((f"{result['procedure']} after", after(images)))
    save_image_grid(lines, path)


def build_parser(prog="python -m keras_pae.perceptual.retrain_decoder"):
    parser = cli.OneLineParser(
        prog=prog,
        description="Retrain decoders with pixel-wise loss on frozen embeddings and compare L1 reconstruction errors.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("runs", nargs="+", help="train.py output directories (all on the same dataset)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=None, help="default: each run's")
    parser.add_argument("--out", required=True, help="folder for retrain.json, report.md and the image grid")
    return parser


def run(args):
    """Retrains every run's decoder and writes the comparison."""
    for run_dir in args.runs:
        if not os.path.isfile(os.path.join(run_dir, "summary.json")):
            raise FileNotFoundError(f"{run_dir} is not a finished train.py run (no summary.json).")
    datasets = {_config(run_dir).dataset for run_dir in args.runs}
    if len(datasets) > 1:
        raise ValueError(f"The runs use different datasets ({', '.join(sorted(datasets))}); compare one dataset at a time.")
    if args.epochs < 1:
        raise ValueError(f"--epochs must be a positive integer; got {args.epochs}.")
    rows = [retrain_decoder(run_dir, args.epochs, args.batch_size) for run_dir in args.runs]
    results = [r for r, _, _ in rows]
    for result, relative in zip(results, relative_performance(results)):
        result["relative_to_best"] = relative
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, RESULT_FILE), "w") as f:
        json.dump(results, f, indent=2)
    table = markdown_table(
        ("run", "procedure", "z", "L1 before", "L1 after", "relative to best"),
        [
            (
                os.path.basename(r["run"]), r["procedure"], r["z_dim"],
                "—" if r["l1_before"] is None else f"{r['l1_before']:.4f}",
                f"{r['l1_after']:.4f}", f"{100 * r['relative_to_best']:.0f}%",
            )
            for r in results
        ],
    )
    report = "# Decoder retraining (pixel-wise loss, frozen encoder)\n\n" + table
    with open(os.path.join(args.out, REPORT_FILE), "w") as f:
        f.write(report + "\n")
    _draw(rows, _config(args.runs[0]), os.path.join(args.out, GRID_FILE))
    print(report)


def main(argv=None, prog="python -m keras_pae.perceptual.retrain_decoder"):
    return cli.main(build_parser(prog), run, argv)


if __name__ == "__main__":
    sys.exit(main())
