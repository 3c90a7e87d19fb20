"""The bottleneck study: every (size, compression) CAE, then transfer and SVCCA.

Bottleneck paper, Section 3. Every configuration trains from the
same seed with the test loss after every epoch (`val_loss` in its
`history.csv`); each lives in `runs/<name>.incomplete/` while it trains and
is published as `runs/<name>/` when done, through `runs.fit_resumable`
(Keras `BackupAndRestore`), so rerunning the study skips finished
configurations and resumes an interrupted one. The analysis (results table,
transfer probes, SVCCA, figures, report) is recomputed from the runs'
saved histories and codes.
"""

import dataclasses
import json
import os
import shutil
import time
from typing import Optional, Tuple

import keras
import numpy as np
import tensorflow as tf

from keras_pae.bottleneck import analysis, geometry
from keras_pae.bottleneck.bottleneck_autoencoder import build_bottleneck_autoencoder
from keras_pae.bottleneck.geometry import RECONSTRUCTION_EXAMPLES, RUNS_DIR, run_name
from keras_pae.core import cli, optimizers, runs
from keras_pae.core.config import JsonConfig
from keras_pae.data import pipeline, registry

STUDY_FILE = "study.json"


@dataclasses.dataclass
class StudyConfig(JsonConfig):
    """Everything that determines a bottleneck study.

    Args:
        dataset: data registry name (e.g. `"fashion_mnist"`, `"stl10"`).
        image_size: side the images are centre-padded (or cropped) to, a
            multiple of 32 (Fashion-MNIST 28 -> 32).
        sizes: bottleneck sizes (1, 2, 3: sides image_size / 32, 16, 8).
        compressions: bottleneck volume / input volume (the paper: 1/64, 1/16, 1/4, 1).
        epochs: epochs per configuration (the paper: 1000).
        batch_size: images per step.
        learning_rate: Adam's learning rate.
        residual_blocks: residual blocks after each conv (the paper: 2).
        seed: the one seed of every configuration.
        limit: use the first `limit` training images (None: all).
        test_limit: use the first `test_limit` test images.
        probe_limit: images per part (train, test) encoded for the transfer
            probes and SVCCA.
        folds: cross-validation folds of the probes (the paper: 5).
        weight_decay: the probes' weight decay (the paper: 0.01).
        keep_variance: variance the SVCCA SVD keeps (the paper: 0.99).
        data_dir: folder with the dataset's local files.
        export: export each encoder as a SavedModel.
        deterministic: deterministic TensorFlow ops.
        out: output directory.
    """

    dataset: str = "fashion_mnist"
    image_size: int = 32
    sizes: Tuple[int, ...] = geometry.SIZES
    compressions: Tuple[str, ...] = geometry.COMPRESSIONS
    epochs: int = 5
    batch_size: int = 64
    learning_rate: float = 1e-3
    residual_blocks: int = 2
    seed: int = 0
    limit: Optional[int] = None
    test_limit: int = 2000
    probe_limit: int = 2000
    folds: int = 5
    weight_decay: float = 0.01
    keep_variance: float = 0.99
    data_dir: Optional[str] = None
    export: bool = True
    deterministic: bool = True
    out: Optional[str] = None

    def validate(self):
        """Raises a ValueError / FileNotFoundError naming a bad value."""
        registry.info(self.dataset)
        if self.data_dir is not None and not os.path.isdir(self.data_dir):
            raise FileNotFoundError(f"--data-dir {self.data_dir!r} is not a directory.")
        for name in ("image_size", "epochs", "batch_size", "test_limit", "probe_limit"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 2):
            raise ValueError(f"limit must be an integer >= 2 or unset; got {self.limit!r}.")
        if not isinstance(self.folds, int) or self.folds < 2:
            raise ValueError(f"folds must be an integer >= 2; got {self.folds!r}.")
        if self.residual_blocks < 0:
            raise ValueError(f"residual_blocks must be >= 0; got {self.residual_blocks}.")
        if not 0 < self.keep_variance <= 1:
            raise ValueError(f"keep_variance must lie in (0, 1]; got {self.keep_variance}.")
        self.sizes = tuple(int(s) for s in self.sizes)
        self.compressions = tuple(str(geometry.parse_compression(c)) for c in self.compressions)
        if not self.sizes or not self.compressions:
            raise ValueError("The study needs at least one size and one compression.")
        for size in self.sizes:
            for compression in self.compressions:
                geometry.bottleneck_shape((self.image_size, self.image_size, 1), size, compression)
        return self

    @property
    def output_dir(self):
        return self.out or os.path.join("saved_models", f"bottleneck_{self.dataset}_s{self.seed}")

    def configurations(self):
        """(size, compression) pairs in the order they train."""
        return [(s, c) for s in self.sizes for c in self.compressions]


def prepare_images(images, image_size):
    """uint8 (N, H, W, C) -> float32 in [0, 1], centre-padded or cropped to `image_size`."""
    images = tf.image.resize_with_crop_or_pad(tf.convert_to_tensor(images), image_size, image_size)
    return (tf.cast(images, tf.float32) / 255.0).numpy()


@dataclasses.dataclass
class StudyData:
    train: np.ndarray
    test: np.ndarray
    train_labels: Optional[np.ndarray]
    test_labels: Optional[np.ndarray]
    label_kind: str
    num_outputs: int


def load_data(config, verbose=True):
    """Training and test images of the study through the data registry."""
    info = registry.info(config.dataset)
    source = registry.DataConfig(dataset=config.dataset, limit=config.limit, data_dir=config.data_dir)
    train = registry.autoencoder_data(source, progress=verbose)
    # --limit cuts the training images only; the test images are --test-limit's.
    test = registry.test_data(dataclasses.replace(source, limit=None), progress=verbose).take(config.test_limit)

    def usable(labels):
        if labels is None or (info.label_kind == "class" and np.min(labels) < 0):
            return None  # unlabelled (e.g. STL-10's unlabelled split has -1)
        return np.asarray(labels)

    return StudyData(
        prepare_images(train.images, config.image_size),
        prepare_images(test.images, config.image_size),
        usable(train.labels),
        usable(test.labels),
        info.label_kind,
        info.num_outputs,
    )


def _check_study_file(config, out, overwrite):
    path = os.path.join(out, STUDY_FILE)
    if os.path.isfile(path):
        with open(path) as f:
            saved = StudyConfig.from_dict(json.load(f)).validate().to_dict()
        differing = sorted(k for k, v in config.to_dict().items() if saved.get(k) != v and k != "out")
        if differing and not overwrite:
            raise ValueError(
                f"{out} holds a study with different {', '.join(differing)}; use the same flags, "
                "--overwrite, or another --out."
            )
        if differing:
            shutil.rmtree(os.path.join(out, RUNS_DIR), ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    with open(path, "w") as f:
        json.dump(config.to_dict(), f, indent=2)


def train_configuration(config, data, size, compression, run_dir, verbose):
    """Trains one configuration in `<run_dir>.incomplete` and publishes it; returns its summary."""
    staging = run_dir + runs.INCOMPLETE_SUFFIX
    keras.utils.set_random_seed(config.seed)  # the same seed for every configuration
    image_shape = data.train.shape[1:]
    model = build_bottleneck_autoencoder(image_shape, size, compression, config.residual_blocks)
    # Adam in one fused kernel per variable: fewer ops to trace and to run (Keras's arithmetic).
    model.compile(optimizer=optimizers.adam(config.learning_rate, "keras"))
    train_ds = pipeline.finish(
        tf.data.Dataset.from_tensor_slices(data.train)
        .shuffle(len(data.train), seed=config.seed, reshuffle_each_iteration=True)
        .batch(config.batch_size)
    )
    test_ds = pipeline.finish(tf.data.Dataset.from_tensor_slices(data.test).batch(256))
    history = runs.fit_resumable(model, train_ds, test_ds, staging, config.epochs, verbose=verbose)
    if not history or not np.isfinite(history[-1]["loss"]):
        raise RuntimeError(f"{staging}: training diverged (non-finite loss); see its history.csv.")
    # The study compares the configurations after the same number of epochs: the
    # final weights are kept, not the best test epoch's.
    runs.save_model_weights(model, os.path.join(staging, runs.WEIGHTS_FILE))
    encoder = model.embedding_model()
    runs.save_encoder(encoder, staging)
    probe = config.probe_limit
    for part, images in (("train", data.train[:probe]), ("test", data.test[:probe])):
        np.save(os.path.join(staging, f"codes_{part}.npy"), encoder.predict(pipeline.array_batches(images, 256), verbose=0))
    examples = np.concatenate([data.train[:RECONSTRUCTION_EXAMPLES], data.test[:RECONSTRUCTION_EXAMPLES]])
    np.save(os.path.join(staging, "reconstructions.npy"), model.predict(pipeline.array_batches(examples, 32), verbose=0))
    if config.export:
        export_dir = os.path.join(staging, "encoder")
        shutil.rmtree(export_dir, ignore_errors=True)
        encoder.export(export_dir, verbose=False)
    summary = {
        "size": size,
        "compression": str(geometry.parse_compression(compression)),
        "bottleneck_shape": list(model.code_shape),
        "image_shape": list(image_shape),
        "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "epochs_run": len(history),
        "train_loss": history[-1]["loss"],
        "test_loss": history[-1]["val_loss"],
        "best_test_loss": min(row["val_loss"] for row in history),
        "best_test_epoch": int(np.argmin([row["val_loss"] for row in history])) + 1,
        "seconds_per_epoch": [row.get("train_seconds") for row in history],
        "history": history,
    }
    with open(os.path.join(staging, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    os.remove(os.path.join(staging, runs.FIT_DONE_FILE))
    runs.publish(staging, run_dir)
    keras.backend.clear_session()
    return summary


def run_study(config, overwrite=False, verbose=True, analyse=True):
    """Trains every configuration that is not finished, then analyses them all.

    Args:
        config: a `StudyConfig`.
        overwrite: discard a study made with different settings.
        verbose: progress lines (and `fit`'s per-epoch lines).
        analyse: write the results table, transfer, SVCCA, figures and report.

    Returns:
        The study summary (dict), as written to `summary.json`.
    """
    config.validate()
    out = os.path.abspath(config.output_dir)
    _check_study_file(config, out, overwrite)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    data = load_data(config, verbose)
    say = print if verbose else (lambda *a, **k: None)
    fit_verbose = cli.fit_verbosity("auto") if verbose else 0
    say(f"{config.dataset}: {len(data.train)} training and {len(data.test)} test images of shape {data.train.shape[1:]}")
    summaries, trained = {}, []
    configurations = config.configurations()
    for index, (size, compression) in enumerate(configurations, start=1):
        name = run_name(size, compression)
        run_dir = os.path.join(out, RUNS_DIR, name)
        shape = geometry.bottleneck_shape(data.train.shape[1:], size, compression)
        header = f"[{index}/{len(configurations)}] {name} (bottleneck {'x'.join(map(str, shape))})"
        if os.path.isfile(os.path.join(run_dir, "summary.json")):
            with open(os.path.join(run_dir, "summary.json")) as f:
                summaries[name] = json.load(f)
            say(f"{header}: finished earlier, skipped")
            continue
        say(f"{header}: training {config.epochs} epochs")
        start = time.perf_counter()
        summaries[name] = train_configuration(config, data, size, compression, run_dir, fit_verbose)
        trained.append(name)
        say(
            f"{header}: train loss {summaries[name]['train_loss']:.5f}, test loss "
            f"{summaries[name]['test_loss']:.5f} ({time.perf_counter() - start:.0f} s)"
        )
    if not analyse:
        return {"trained": trained}
    summary = analysis.analyse(config, out, data, summaries, say)
    summary["trained"] = trained
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary
