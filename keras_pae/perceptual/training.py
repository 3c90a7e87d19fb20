"""Trains one autoencoder run: data, model, `fit` with callbacks, export, summary.

SPEC §4. A run lives in `<out>.incomplete/` while it trains (Keras
`BackupAndRestore` state, the CSV history, the best weights) and is renamed
to `<out>/` only when the summary and the SavedModel are written, so a crash
never leaves a directory that looks finished; `resume=True` continues it.
"""

import contextlib
import csv
import json
import os
import platform
import shutil
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from keras_pae import feature_cache, optimizers
from keras_pae.config import TrainConfig
from keras_pae.data import pipeline, registry
from keras_pae.perceptual.perceptual_autoencoder import build_perceptual_autoencoder, dtype_policy

HISTORY_FILE = "history.csv"
FIT_DONE_FILE = "fit.done"
PREDICTORS_FILE = "predictors.json"
# The best-validation weights, kept by ModelCheckpoint; the finished run keeps them.
WEIGHTS_FILE = "autoencoder.weights.h5"
INCOMPLETE_SUFFIX = ".incomplete"
# Cached loss-network features, under the staging directory; a finished run drops them.
FEATURES_DIR = "features"


class EpochTimer(keras.callbacks.Callback):
    """Adds `train_seconds` (the epoch's training time, without validation) to the logs.

    Training time per epoch is one of the feature-prediction paper's results.
    Place it before `CSVLogger` so the logger records it.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._seconds = None

    def on_test_begin(self, logs=None):
        if getattr(self, "_seconds", 0) is None:
            self._seconds = time.perf_counter() - self._start

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["train_seconds"] = self._seconds or time.perf_counter() - self._start


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` that carries on from the history of an interrupted run.

    Args:
        history: rows of the earlier epochs (dicts with the monitored key).
        **kwargs: passed to `EarlyStopping`.
    """

    def __init__(self, history=(), **kwargs):
        super().__init__(**kwargs)
        self.earlier = [float(row[self.monitor]) for row in history]

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.earlier:
            best = int(np.argmin(self.earlier))
            self.best = self.earlier[best]
            self.best_epoch = best
            self.wait = len(self.earlier) - 1 - best


def read_history(path):
    """Rows of a `CSVLogger` file as dicts of floats, one per epoch (last wins)."""
    if not os.path.isfile(path):
        return []
    rows = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            values = {k: float(v) for k, v in row.items() if v != ""}
            values["epoch"] = int(values["epoch"])
            rows[values["epoch"]] = values
    return [rows[epoch] for epoch in sorted(rows)]


def fit_resumable(
    model, train_data, validation_data, staging, epochs, best_weights=None, patience=None, verbose=0,
    callbacks=(),
):
    """`model.fit` inside a staging directory, resumable after a crash.

    Keras `BackupAndRestore` state and a `CSVLogger` history (with
    `train_seconds`) live in `staging`; when `fit` ends a `fit.done` marker
    is written (BackupAndRestore deletes its state then), so calling this again
    does not refit. Shared by `train` and the bottleneck study.

    Args:
        model: a compiled, built model.
        train_data, validation_data: datasets passed to `fit`.
        staging: the run's working directory (created if missing).
        epochs: total epochs, counting the ones an interrupted fit finished.
        best_weights: path where `ModelCheckpoint` keeps the weights of the
            lowest `val_loss`; None keeps none.
        patience: early-stopping patience on `val_loss` (carried over a
            resume); None trains every epoch.
        verbose: `fit`'s verbosity.
        callbacks: further callbacks, after the logger.

    Returns:
        The history rows (see `read_history`).
    """
    os.makedirs(staging, exist_ok=True)
    history_path = os.path.join(staging, HISTORY_FILE)
    fit_done = os.path.join(staging, FIT_DONE_FILE)
    if os.path.exists(fit_done):
        return read_history(history_path)
    earlier = read_history(history_path)
    all_callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(staging, "backup")),
        EpochTimer(),
        keras.callbacks.CSVLogger(history_path, append=True),
        *callbacks,
    ]
    if best_weights is not None:
        all_callbacks.append(
            keras.callbacks.ModelCheckpoint(
                best_weights,
                monitor="val_loss",
                save_best_only=True,
                save_weights_only=True,
                initial_value_threshold=min((r["val_loss"] for r in earlier), default=None),
            )
        )
    if patience is not None:
        all_callbacks.append(ResumableEarlyStopping(history=earlier, monitor="val_loss", patience=patience))
    all_callbacks.append(keras.callbacks.TerminateOnNaN())
    if earlier and verbose:
        print(f"Resuming {staging} after epoch {len(earlier)}.")
    model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        shuffle=False,  # the dataset reshuffles itself, seeded
        callbacks=all_callbacks,
        verbose=verbose,
    )
    # BackupAndRestore has deleted its state: a resume must not refit.
    open(fit_done, "w").close()
    return read_history(history_path)


def _prepare_directories(config, resume, overwrite):
    out = os.path.abspath(config.output_dir)
    staging = out + INCOMPLETE_SUFFIX
    if os.path.exists(out) and not overwrite:
        raise ValueError(
            f"{out} already holds a finished run; pass --overwrite to replace it or choose another --out."
        )
    if os.path.exists(staging):
        if resume:
            saved = TrainConfig.load(os.path.join(staging, "config.json"))
            differing = sorted(
                k for k, v in config.to_dict().items() if saved.to_dict().get(k) != v
            )
            if differing:
                raise ValueError(
                    f"Cannot resume {staging}: it was started with different {', '.join(differing)}; "
                    "use the same flags or --overwrite."
                )
        elif overwrite:
            shutil.rmtree(staging)
        else:
            raise ValueError(
                f"{staging} holds an unfinished run; pass --resume to continue it or --overwrite to start over."
            )
    return out, staging


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


def cpu_has_bfloat16(cpuinfo="/proc/cpuinfo"):
    """Whether the CPU has bfloat16 dot-product instructions.

    AVX512_BF16 or AMX-BF16 on x86, BF16 on Arm: oneDNN then multiplies
    bfloat16 matrices at about twice the float32 rate (measured here: a
    2048-cube matmul at 412 against 210 GFLOPS). Read from `cpuinfo`'s flags
    (Linux); False where there is no such file.
    """
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return bool(BFLOAT16_CPU_FLAGS & set(value.split()))
    except OSError:
        pass
    return False


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


def _cached_features(model, config, images, staging, verbose):
    """The loss network's features of `images` for `config.feature_cache`, or None."""
    directory = os.path.join(staging, FEATURES_DIR)
    if config.feature_cache == "off" or not model.procedure.needs_loss_network:
        feature_cache.remove(directory)
        return None
    needed = feature_cache.required_bytes(model.loss_network, len(images))
    existing = sum(e.stat().st_size for e in os.scandir(directory)) if os.path.isdir(directory) else 0
    free = shutil.disk_usage(staging).free + existing
    if needed > 0.9 * free:
        if verbose:
            print(
                f"Not caching loss-network features: they need {needed / 1e9:.1f} GB and {free / 1e9:.1f} GB "
                "are free; computing them every step instead."
            )
        return None
    return feature_cache.cached_features(
        model.loss_network, images, directory, image_size=config.image_size,
        fit=registry.info(config.dataset).fit, progress=bool(verbose),
    )


def _set_seeds(config):
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()


def train(config, resume=False, overwrite=False, verbose="auto"):
    """Trains the run described by `config` and returns its summary dict.

    Args:
        config: a `TrainConfig`.
        resume: continue an interrupted run in `<out>.incomplete/`.
        overwrite: replace a finished run or discard an unfinished one.
        verbose: `fit`'s verbosity; "auto" shows a progress bar on a terminal
            and one line per epoch otherwise.
    """
    config.validate()
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    out, staging = _prepare_directories(config, resume, overwrite)

    # Everything a user can get wrong fails here, before any directory exists.
    _set_seeds(config)
    strategy = distribution_strategy(config.distribute)
    with precision_policy(config.mixed_precision), strategy.scope():
        model = _build_model(config, config.loss_weights)
        # Adam in one fused kernel per variable, PyTorch's arithmetic by default (see keras_pae.optimizers).
        model.compile(optimizer=optimizers.adam(config.learning_rate, config.adam), jit_compile=config.jit_compile)
    data = registry.autoencoder_data(config, progress=bool(verbose))
    split = pipeline.validation_split(len(data.images), data.groups, config.validation_fraction)

    os.makedirs(staging, exist_ok=True)
    config.save(os.path.join(staging, "config.json"))
    history_path = os.path.join(staging, HISTORY_FILE)
    best_path = os.path.join(staging, WEIGHTS_FILE)
    inputs = dict(image_size=config.image_size, fit=registry.info(config.dataset).fit)
    train_inputs, validation_inputs = dict(inputs), dict(inputs)
    features = None
    if not os.path.exists(os.path.join(staging, FIT_DONE_FILE)):
        features = _cached_features(model, config, data.images, staging, verbose)
    if features is not None:
        with_images = model.procedure.needs_images_given_features
        train_inputs.update(features=features[:split], with_images=with_images)
        validation_inputs.update(features=features[split:], with_images=with_images)
    with precision_policy(config.mixed_precision):
        fit_resumable(
            model,
            pipeline.image_dataset(data.images[:split], config.batch_size, shuffle=True, seed=config.seed, **train_inputs),
            pipeline.image_dataset(data.images[split:], config.batch_size, **validation_inputs),
            staging,
            config.epochs,
            best_weights=best_path,
            patience=config.early_stopping_patience,
            verbose=verbose,
        )
    del features
    feature_cache.remove(os.path.join(staging, FEATURES_DIR))

    history = read_history(history_path)
    if not os.path.isfile(best_path):
        raise RuntimeError(f"No epoch finished with a finite validation loss; see {history_path}.")
    if config.mixed_precision:
        # The predictors' embeddings and the exported encoder in float32:
        # exact to the trained weights, and served fast on any device.
        model = _build_model(config, "random")
    model.load_weights(best_path)
    val_losses = [row["val_loss"] for row in history]
    best = int(np.nanargmin(val_losses))
    predictors = None
    if config.predictor_epochs:
        predictors = _evaluate_predictors(model, config, os.path.join(staging, PREDICTORS_FILE), verbose)
    encoder_dir = os.path.join(staging, "encoder")
    if os.path.exists(encoder_dir):
        shutil.rmtree(encoder_dir)
    model.embedding_model().export(encoder_dir, verbose=False)

    summary = {
        "procedure": config.procedure,
        "dataset": config.dataset,
        "z_dim": config.z_dim,
        "gamma": config.gamma,
        "variational": config.gamma > 0,
        "image_shape": list(model.image_shape),
        "trainable_params": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        "train_images": int(split),
        "validation_images": int(len(data.images) - split),
        "epochs_run": len(history),
        "best_epoch": best + 1,
        "best_val_loss": history[best]["val_loss"],
        "seconds_per_epoch": [row.get("train_seconds") for row in history],
        "stopped_on_nan": not np.isfinite(history[-1]["loss"]),
        "history": history,
        "predictors": predictors,
        "encoder": "encoder",
        "weights": WEIGHTS_FILE,
        "config": config.to_dict(),
        "versions": {
            "keras": keras.__version__,
            "tensorflow": tf.__version__,
            "python": platform.python_version(),
        },
    }
    with open(os.path.join(staging, "summary.json.tmp"), "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(os.path.join(staging, "summary.json.tmp"), os.path.join(staging, "summary.json"))
    os.remove(os.path.join(staging, FIT_DONE_FILE))
    publish(staging, out)
    if verbose:
        print(
            f"{config.procedure}: best val loss {summary['best_val_loss']:.6g} at epoch "
            f"{summary['best_epoch']}/{summary['epochs_run']}; wrote {out}"
        )
        if predictors:
            print(f"{config.procedure}: {_format_metric(predictors)} with predictor {predictors['chosen']}")
    return summary


def _format_metric(predictors):
    if predictors["test_metric"] == "pixel_error":
        text = f"test position error {predictors['test_value']:.2f} px"
        baseline = f"{predictors.get('baseline_value', float('nan')):.2f} px"
    else:
        text = f"test {predictors['test_metric']} {predictors['test_value']:.4f}"
        baseline = f"{predictors.get('baseline_value', float('nan')):.4f}"
    return f"{text} (without the embedding: {baseline})"


def _evaluate_predictors(model, config, path, verbose):
    """Encodes the predictor and test data once (mu) and runs the predictors (SPEC §5)."""
    if os.path.isfile(path):
        with open(path) as f:
            return json.load(f)
    from keras_pae.evaluation import predictors
    from tuning import search

    dataset = registry.info(config.dataset)
    embedder = model.embedding_model()

    def encode(part):
        images = pipeline.image_dataset(part.images, 512, image_size=config.image_size, fit=dataset.fit)
        return embedder.predict(images, verbose=0)

    labelled = registry.predictor_data(config, progress=bool(verbose))
    test = registry.test_data(config, progress=bool(verbose))
    if labelled.labels is None or test.labels is None:
        if verbose:
            print(f"{config.dataset}: the data has no labels (no class subfolders); skipping the predictors.")
        return None
    # Image folders: as many outputs as classes found.
    num_outputs = dataset.num_outputs or int(max(labelled.labels.max(), test.labels.max())) + 1
    split = pipeline.validation_split(len(labelled), labelled.groups, config.validation_fraction)
    embedded = encode(labelled)
    if verbose:
        what = "a KerasTuner search of predictors" if config.predictor_search == "tuner" else f"{len(predictors.HIDDEN_LAYERS)} predictors"
        print(f"Training {what} on {len(labelled)} embeddings.")
    parts = (
        (embedded[:split], labelled.labels[:split]),
        (embedded[split:], labelled.labels[split:]),
        (encode(test), test.labels),
    )
    # Kept so `python -m tuning.search RUN` can search predictors later.
    problem = dict(label_kind=dataset.label_kind, num_outputs=num_outputs, pixels_per_unit=dataset.pixels_per_unit)
    search.save_embeddings(os.path.join(os.path.dirname(path), search.EMBEDDINGS_FILE), *parts, **problem)
    if config.predictor_search == "tuner":
        result = search.search_predictors(
            *parts,
            **problem,
            directory=os.path.join(os.path.dirname(path), search.SEARCH_DIR),
            epochs=config.predictor_epochs,
            max_trials=config.predictor_trials,
            seed=config.seed,
        )
    else:
        result = predictors.evaluate_embeddings(*parts, **problem, epochs=config.predictor_epochs, seed=config.seed)
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return result


def publish(staging, out):
    """Moves a finished run into place, replacing an older one last."""
    if os.path.exists(out):
        old = out + ".old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
        os.replace(staging, out)
        shutil.rmtree(old)
    else:
        os.replace(staging, out)


def load_run(run_dir):
    """Rebuilds the trained autoencoder of a finished run directory.

    The loss network's weights are part of the saved weights, so this works
    offline whatever `loss_weights` the run was trained with.

    Args:
        run_dir: a directory written by `train`.
    """
    config = TrainConfig.load(os.path.join(run_dir, "config.json"))
    model = _build_model(config, "random")
    model.load_weights(os.path.join(run_dir, WEIGHTS_FILE))
    return model


def _build_model(config, loss_weights):
    """The autoencoder of `config`, its loss network initialised from `loss_weights`."""
    return build_perceptual_autoencoder(
        config.procedure,
        image_shape=(config.image_size, config.image_size, 3),
        z_dim=config.z_dim,
        gamma=config.gamma,
        loss_weights=loss_weights,
        imagenet_normalize=config.imagenet_normalize,
        seed=config.seed,
        init=config.init,
    )
