"""Trains one autoencoder run: data, model, `fit` with callbacks, export, summary.

Feature-prediction paper, Sec. VI. A run lives in `<out>.incomplete/` while
it trains (Keras `BackupAndRestore` state, the CSV history, the best weights)
and is renamed to `<out>/` only when the summary and the SavedModel are
written, so a crash never leaves a directory that looks finished;
`resume=True` continues it (`keras_pae.core.runs`).
"""

import json
import os
import platform
import shutil

import keras
import numpy as np
import tensorflow as tf

from keras_pae.core import cli, optimizers
from keras_pae.core.devices import distribution_strategy, precision_policy, set_seeds
from keras_pae.core.runs import (
    FIT_DONE_FILE, HISTORY_FILE, WEIGHTS_FILE, fit_resumable, load_model_weights, prepare_directories, publish,
    read_history, save_encoder,
)
from keras_pae.data import pipeline, registry
from keras_pae.perceptual import feature_cache
from keras_pae.perceptual.config import TrainConfig
from keras_pae.perceptual.evaluate import evaluate_predictors, format_metric
from keras_pae.perceptual.perceptual_autoencoder import build_perceptual_autoencoder

PREDICTORS_FILE = "predictors.json"
# Cached loss-network features, under the staging directory; a finished run drops them.
FEATURES_DIR = "features"
# Validation batches at least this large: inference needs no small batches, and
# at batch 16 validating 1,800 images took twice as long. (Losses are means
# over examples, so the batch size does not change them.)
VALIDATION_BATCH_SIZE = 256
# Training steps per call of the compiled train function (Keras's `steps_per_execution`).
STEPS_PER_EXECUTION = 10


def _cached_features(model, config, images, directory, staging, verbose):
    """The loss network's features of `images` for `config.feature_cache` (cached in `directory`), or None."""
    if config.feature_cache == "off" or not model.procedure.needs_loss_network:
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


def train(config, resume=False, overwrite=False, verbose="auto", features_dir=None):
    """Trains the run described by `config` and returns its summary dict.

    Args:
        config: a `TrainConfig`.
        resume: continue an interrupted run in `<out>.incomplete/`.
        overwrite: replace a finished run or discard an unfinished one.
        verbose: `fit`'s verbosity; "auto" shows a progress bar on a terminal
            and one line per epoch otherwise.
        features_dir: where the loss network's features of the training
            images are cached, kept for the next run on the same images (an
            experiment's runs); None caches them in the run's staging
            directory and deletes them when the run ends.
    """
    config.validate()
    verbose = cli.fit_verbosity(verbose)
    out, staging = prepare_directories(config, resume, overwrite)

    # Everything a user can get wrong fails here, before any directory exists.
    set_seeds(config.seed, config.deterministic)
    strategy = distribution_strategy(config.distribute)
    with precision_policy(config.mixed_precision), strategy.scope():
        model = _compiled_model(config)
    data = registry.autoencoder_data(config, progress=bool(verbose))
    split = pipeline.validation_split(len(data.images), data.groups, config.validation_fraction)

    os.makedirs(staging, exist_ok=True)
    config.save(os.path.join(staging, "config.json"))
    history_path = os.path.join(staging, HISTORY_FILE)
    best_path = os.path.join(staging, WEIGHTS_FILE)
    inputs = dict(image_size=config.image_size, fit=registry.info(config.dataset).fit)
    train_inputs, validation_inputs = dict(inputs), dict(inputs)
    features = None
    own_features = features_dir is None
    if own_features:
        features_dir = os.path.join(staging, FEATURES_DIR)
    if not os.path.exists(os.path.join(staging, FIT_DONE_FILE)):
        features = _cached_features(model, config, data.images, features_dir, staging, verbose)
    if features is not None:
        with_images = model.procedure.needs_images_given_features
        train_inputs.update(features=features[:split], with_images=with_images)
        validation_inputs.update(features=features[split:], with_images=with_images)
    with precision_policy(config.mixed_precision):
        fit_resumable(
            model,
            pipeline.image_dataset(data.images[:split], config.batch_size, shuffle=True, seed=config.seed, **train_inputs),
            pipeline.image_dataset(data.images[split:], max(config.batch_size, VALIDATION_BATCH_SIZE), **validation_inputs),
            staging,
            config.epochs,
            best_weights=best_path,
            patience=config.early_stopping_patience,
            verbose=verbose,
        )
    del features
    if own_features:
        feature_cache.remove(features_dir)

    history = read_history(history_path)
    if not os.path.isfile(best_path):
        # A user can cause it (e.g. too high a --learning-rate): one line at the CLI, nothing published.
        raise ValueError(
            f"Training diverged: no epoch finished with a finite validation loss (see {history_path}); "
            "lower --learning-rate and rerun with --overwrite."
        )
    if config.mixed_precision:
        # The predictors' embeddings and the exported encoder in float32:
        # exact to the trained weights, and served fast on any device.
        model = _build_model(config, "random")
    load_model_weights(model, best_path)
    val_losses = [row["val_loss"] for row in history]
    best = int(np.nanargmin(val_losses))
    predictors = None
    if config.predictor_epochs:
        predictors = evaluate_predictors(model, config, os.path.join(staging, PREDICTORS_FILE), verbose)
    encoder_dir = os.path.join(staging, "encoder")
    if os.path.exists(encoder_dir):
        shutil.rmtree(encoder_dir)
    model.embedding_model().export(encoder_dir, verbose=False)
    save_encoder(model.embedding_model(), staging)

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
            print(f"{config.procedure}: {format_metric(predictors)} with predictor {predictors['chosen']}")
    return summary


# The autoencoder the last run of this process compiled, kept for the next run
# with the same settings but the seed (an experiment runs a point's seeds one
# after another): tracing its train and validation steps took about 2 s of
# every run. One is kept, so a grid holds one model's memory, not one per point.
_last_compiled = {}


def _compiled_model(config):
    """The compiled autoencoder of `config`, initialised from its seed, its optimizer built and new.

    The previous run's compiled autoencoder is reused when its settings differ
    from `config`'s only in the seed, its traced steps with it: it takes the
    new model's initial variables and its optimizer's state from before its
    first step, so it trains exactly as a new one would.
    """
    model = _build_model(config, config.loss_weights)
    settings = {k: v for k, v in config.to_dict().items() if k not in ("seed", "out")}
    kept = _last_compiled.get("model")
    if (
        _last_compiled.get("settings") == settings
        and [tuple(v.shape) for v in kept.variables] == [tuple(v.shape) for v in model.variables]
    ):
        for variable, value in zip(kept.variables, model.variables):
            variable.assign(value)
        for variable, value in zip(kept.optimizer.variables, _last_compiled["optimizer_start"]):
            variable.assign(value)
        kept._initial_epoch = None  # set by a resume's BackupAndRestore, which Keras never clears
        return kept
    # Adam in one fused kernel per variable, PyTorch's arithmetic by default (see keras_pae.core.optimizers).
    model.compile(
        optimizer=optimizers.adam(config.learning_rate, config.adam),
        jit_compile=config.jit_compile,
        # Under a MirroredStrategy Keras 3.15's multi-step loop fails (a placeholder left unfed in its while loop).
        steps_per_execution=STEPS_PER_EXECUTION if config.distribute == "none" else 1,
    )
    # Built on every trainable weight, as `fit_resumable` would, so its state can be reset.
    model.optimizer.build(model.trainable_variables)
    _last_compiled.clear()
    if config.distribute != "none":  # its variables belong to this run's strategy
        return model
    _last_compiled.update(
        settings=settings, model=model, optimizer_start=[v.numpy() for v in model.optimizer.variables]
    )
    return model


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
