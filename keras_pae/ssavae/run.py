"""Runs both phases of the adversarial VAE: data, fits, exports, evaluation, plots, report.

Semi-supervised adversarial VAE paper, Sections 2-3. A run
directory holds one folder per phase (`phase1/`, `decoder_beta*_gamma*/`),
each trained in `<folder>.incomplete/` (Keras `BackupAndRestore` state, CSV
history) and renamed when its weights, SavedModel and test evaluation are
written. A rerun with the same flags loads finished phases instead of
training them and resumes an interrupted one; then summary.json, the plots
and report.md are written again.
"""

import json
import os
import platform
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from keras_pae.core import cli
from keras_pae.core.runs import (
    FIT_DONE_FILE, HISTORY_FILE, INCOMPLETE_SUFFIX, fit_resumable, read_history, save_encoder,
)
from keras_pae.core.tables import markdown_table
from keras_pae.data import pipeline, registry
from keras_pae.ssavae import networks, plots
from keras_pae.ssavae.adversarial_decoder import AdversarialDecoder
from keras_pae.ssavae.config import AdversarialVAEConfig
from keras_pae.ssavae.variational_encoder_classifier import VariationalEncoderClassifier

PHASE1 = "phase1"
EVALUATION_FILE = "evaluation.json"
# Paper-sized inputs: sides that two 2x2 poolings cannot halve twice
# (Omniglot's 105) are resized to the paper's 28.
FALLBACK_SIDE = 28


def model_image_shape(dataset, channels):
    """(H, W, C) the networks take for `dataset`: native size, or 28x28 if not a multiple of 4."""
    height, width = registry.info(dataset).native_size
    if height % 4 or width % 4:
        height = width = FALLBACK_SIDE
    return (height, width, channels)


def to_float_images(images, image_shape, batch=4096):
    """uint8 (N, H, W, C) -> float32 in [0, 1] at `image_shape`'s size."""
    out = np.empty((len(images), *image_shape), np.float32)
    for start in range(0, len(images), batch):
        part = tf.cast(images[start:start + batch], tf.float32) / 255.0
        if tuple(part.shape[1:3]) != tuple(image_shape[:2]):
            part = tf.clip_by_value(tf.image.resize(part, image_shape[:2]), 0.0, 1.0)
        out[start:start + batch] = part.numpy()
    return out


def labelled_mask(num_examples, fraction, seed):
    """A boolean mask choosing round(fraction * N) (at least 1) examples at random (seeded)."""
    count = max(1, int(round(fraction * num_examples)))
    mask = np.zeros(num_examples, bool)
    mask[np.random.default_rng(seed).permutation(num_examples)[:count]] = True
    return mask


def hide_labels(labels, mask):
    """The labels phase 1 may see: those outside `mask` are overwritten with 0.

    Together with the model's masked cross-entropy this makes the hidden
    labels unreachable: they never enter the input pipeline.
    """
    return np.where(mask, labels, 0).astype(np.int32), mask.astype(np.float32)


def load_data(config):
    """Training and test images (float, model-sized) and labels of `config.dataset`."""
    train = registry.load_part(config.dataset, "autoencoder", config.data_dir, config.limit)
    test = registry.load_part(config.dataset, "test", config.data_dir, config.limit)
    if train.labels is None or test.labels is None:
        raise ValueError(f"{config.dataset} has no class labels; phase 1 needs them.")
    shape = model_image_shape(config.dataset, train.images.shape[-1])
    return (
        to_float_images(train.images, shape),
        np.asarray(train.labels).astype(np.int32).reshape(-1),
        to_float_images(test.images, shape),
        np.asarray(test.labels).astype(np.int32).reshape(-1),
    )


def build_phase1(config, image_shape, num_classes, num_images):
    """The compiled Variational Encoder Classifier of `config` for `num_images` training images."""
    keras.utils.set_random_seed(config.seed)
    steps_per_epoch = -(-num_images // config.batch_size)
    vec = VariationalEncoderClassifier(
        networks.encoder(image_shape, config.latent_dim, config.width, config.hidden),
        networks.classifier(config.latent_dim, num_classes, config.hidden),
        kl_weight=config.kl_weight,
        kl_warmup_steps=int(round(config.kl_warmup_epochs * steps_per_epoch)),
        seed=config.seed,
    )
    vec.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    vec(np.zeros((1, *image_shape), np.float32))  # BackupAndRestore needs a built model
    return vec


def build_phase2(config, vec, beta, gamma):
    """The compiled `AdversarialDecoder` of one (beta, gamma), on `vec`'s frozen networks."""
    keras.utils.set_random_seed(config.seed + 1)
    image_shape = tuple(vec.encoder.input_shape[1:])
    model = AdversarialDecoder(
        vec.encoder,
        vec.classifier,
        networks.decoder(config.latent_dim, image_shape, config.width, config.hidden),
        networks.discriminator(image_shape, config.width, config.hidden),
        alphas=config.alphas,
        beta=beta,
        gamma=gamma,
        n_dis=config.n_dis,
        seed=config.seed + 1,
    )
    model.compile(
        d_optimizer=keras.optimizers.Adam(config.d_learning_rate),
        g_optimizer=keras.optimizers.Adam(config.learning_rate),
    )
    model(np.zeros((1, *image_shape), np.float32))
    return model


def _networks(model):
    if isinstance(model, VariationalEncoderClassifier):
        return {"encoder": model.encoder, "classifier": model.classifier}
    return {"decoder": model.decoder, "discriminator": model.discriminator}


def _run_phase(name, out, model, dataset, epochs, evaluate, export, verbose):
    """Fits one phase in `<out>/<name>.incomplete` and publishes it, or loads a finished one.

    Returns `(history, evaluation, trained)`.
    """
    final = os.path.join(out, name)
    nets = _networks(model)
    if os.path.isdir(final):
        for key, net in nets.items():
            net.load_weights(os.path.join(final, f"{key}.weights.h5"))
        if verbose:
            print(f"{name}: finished earlier; loaded {final}")
        with open(os.path.join(final, EVALUATION_FILE)) as f:
            return read_history(os.path.join(final, HISTORY_FILE)), json.load(f), False
    staging = final + INCOMPLETE_SUFFIX
    weight_paths = {key: os.path.join(staging, f"{key}.weights.h5") for key in nets}
    if all(os.path.isfile(p) for p in weight_paths.values()):
        # The fit finished (BackupAndRestore has dropped its state): do not refit.
        for key, net in nets.items():
            net.load_weights(weight_paths[key])
    else:
        if verbose:
            print(f"{name}: training {epochs} epochs")

        def save_weights(logs=None):
            # Before fit_resumable marks the fit done, so a crash never leaves
            # a finished fit without its weights.
            for key, net in nets.items():
                net.save_weights(weight_paths[key])

        fit_resumable(
            model, dataset, None, staging, epochs, verbose=verbose,
            callbacks=[keras.callbacks.LambdaCallback(on_train_end=save_weights)],
        )
    if os.path.exists(os.path.join(staging, FIT_DONE_FILE)):
        os.remove(os.path.join(staging, FIT_DONE_FILE))
    evaluation = evaluate(model)
    with open(os.path.join(staging, EVALUATION_FILE), "w") as f:
        json.dump(evaluation, f, indent=2)
    export(model, staging)
    os.replace(staging, final)
    return read_history(os.path.join(final, HISTORY_FILE)), evaluation, True


def _export(model, directory):
    if os.path.exists(directory):
        shutil.rmtree(directory)
    model.export(directory, verbose=False)


def _export_phase1(vec, directory):
    """The encoder-classifier as a SavedModel, and the encoder (images -> mu) as `encoder.keras`."""
    _export(vec, os.path.join(directory, "encoder_classifier"))
    save_encoder(vec.embedding_model(), directory)


def _prepare(config, overwrite):
    out = os.path.abspath(config.output_dir)
    config_path = os.path.join(out, "config.json")
    if os.path.exists(out) and overwrite:
        shutil.rmtree(out)
    if os.path.isfile(config_path):
        saved = AdversarialVAEConfig.load(config_path).to_dict()
        # The sweep may grow: each (beta, gamma) has its own folder.
        free = {"beta", "gamma", "betas", "gammas", "out"}
        differing = sorted(k for k, v in config.to_dict().items() if k not in free and saved.get(k) != v)
        if differing:
            raise ValueError(
                f"{out} holds a run with different {', '.join(differing)}; use the same flags, "
                "another --out, or --overwrite."
            )
    elif os.path.isdir(out) and os.listdir(out):
        raise ValueError(f"{out} is not empty and holds no adversarial-VAE run; choose another --out.")
    return out


def run(config, overwrite=False, verbose="auto"):
    """Trains (or loads) both phases of `config` and writes the run's outputs; returns the summary.

    Args:
        config: an `AdversarialVAEConfig`.
        overwrite: delete an earlier run in the output directory first.
        verbose: `fit`'s verbosity; "auto" is a progress bar on a terminal,
            one line per epoch otherwise.
    """
    config.validate()
    verbose = cli.fit_verbosity(verbose)
    out = _prepare(config, overwrite)
    started = time.perf_counter()
    train_x, train_y, test_x, test_y = load_data(config)
    num_classes = registry.info(config.dataset).num_outputs or int(max(train_y.max(), test_y.max())) + 1
    image_shape = train_x.shape[1:]
    mask = labelled_mask(len(train_x), config.labelled_fraction, config.seed)
    seen_labels, weights = hide_labels(train_y, mask)
    os.makedirs(out, exist_ok=True)
    config.save(os.path.join(out, "config.json"))
    if verbose:
        print(
            f"{config.dataset}: {len(train_x)} training images ({int(mask.sum())} labelled), "
            f"{len(test_x)} test images, shape {tuple(image_shape)}, K_z = {config.latent_dim}"
        )

    def batches(*arrays, shuffle=False):
        data = tf.data.Dataset.from_tensor_slices(arrays if len(arrays) > 1 else arrays[0])
        if shuffle:
            data = data.shuffle(len(arrays[0]), seed=config.seed, reshuffle_each_iteration=True)
        return pipeline.finish(data.batch(config.batch_size))

    test_batches = batches(test_x, test_y)
    trained = []

    vec = build_phase1(config, image_shape, num_classes, len(train_x))
    phase_started = time.perf_counter()
    history, phase1_test, now = _run_phase(
        PHASE1, out, vec, batches(train_x, seen_labels, weights, shuffle=True), config.epochs,
        evaluate=lambda m: m.evaluate(test_batches, verbose=0, return_dict=True),
        export=_export_phase1,
        verbose=verbose,
    )
    if now:
        trained.append(PHASE1)
    phase1 = dict(test=phase1_test, history=history, seconds=time.perf_counter() - phase_started)
    if verbose:
        print(f"{PHASE1}: test accuracy {phase1_test['accuracy']:.4f}, KL {phase1_test['kl_loss']:.4g}")

    decoders = {}
    decoder_summaries = []
    for beta, gamma in config.decoders():
        key = AdversarialVAEConfig.decoder_key(beta, gamma)
        model = build_phase2(config, vec, beta, gamma)
        phase_started = time.perf_counter()
        history, test, now = _run_phase(
            key, out, model, batches(train_x, shuffle=True), config.phase2_epochs,
            evaluate=lambda m: m.evaluate(batches(test_x), verbose=0, return_dict=True),
            export=lambda m, d: _export(m.decoder, os.path.join(d, "decoder")),
            verbose=verbose,
        )
        if now:
            trained.append(key)
        decoders[(beta, gamma)] = model.decoder
        decoder_summaries.append(
            dict(beta=beta, gamma=gamma, directory=key, test=test, history=history,
                 seconds=time.perf_counter() - phase_started)
        )
        if verbose:
            print(
                f"{key}: test feature reconstruction loss {test['reconstruction_loss']:.5g}, "
                f"pixel MSE {test['pixel_loss']:.5g}, latent {test['latent_loss']:.3g}"
            )

    test_mu = vec.encoder.predict(pipeline.array_batches(test_x, 512), verbose=0)[0]
    figures = plots.write_all(
        out, config, test_x, test_y, test_mu, decoders, num_classes=num_classes
    )
    summary = dict(
        dataset=config.dataset,
        latent_dim=config.latent_dim,
        image_shape=list(image_shape),
        num_classes=num_classes,
        train_images=len(train_x),
        labelled_images=int(mask.sum()),
        test_images=len(test_x),
        phase1=phase1,
        decoders=decoder_summaries,
        trained=trained,
        figures=figures,
        seconds=time.perf_counter() - started,
        config=config.to_dict(),
        versions=dict(keras=keras.__version__, tensorflow=tf.__version__, python=platform.python_version()),
    )
    _write_json(summary, os.path.join(out, "summary.json"))
    _write_report(summary, os.path.join(out, "report.md"))
    if verbose:
        print(f"Trained {', '.join(trained) if trained else 'nothing (all phases were finished)'}; wrote {out}")
    return summary


def _write_json(value, path):
    with open(path + ".tmp", "w") as f:
        json.dump(value, f, indent=2, default=float)
    os.replace(path + ".tmp", path)


def _write_report(summary, path):
    test = summary["phase1"]["test"]
    lines = [
        f"# Adversarial VAE on {summary['dataset']} (K_z = {summary['latent_dim']})",
        "",
        f"{summary['train_images']} training images ({summary['labelled_images']} with labels), "
        f"{summary['test_images']} test images of shape {tuple(summary['image_shape'])}.",
        "",
        "## Phase 1: Variational Encoder Classifier",
        "",
        markdown_table(
            ("test accuracy", "KL", "cross-entropy", "epochs"),
            [(f"{test['accuracy']:.4f}", f"{test['kl_loss']:.4g}", f"{test['classification_loss']:.4g}",
              len(summary["phase1"]["history"]))],
            align="rrrr",
        ),
        "",
        "## Phase 2: decoders (test set, decoding mu)",
        "",
        markdown_table(
            ("β", "γ", "feature reconstruction", "adversarial", "latent", "discriminator", "pixel MSE", "epochs"),
            [
                (f"{d['beta']:g}", f"{d['gamma']:g}", f"{d['test']['reconstruction_loss']:.5g}",
                 f"{d['test']['adversarial_loss']:.4g}", f"{d['test']['latent_loss']:.4g}", f"{d['test']['d_loss']:.4g}",
                 f"{d['test']['pixel_loss']:.5g}", len(d["history"]))
                for d in summary["decoders"]
            ],
            align="rrrrrrrr",
        ),
        "",
        "## Figures",
        "",
    ]
    lines += [f"- `{name}`: {what}" for name, what in summary["figures"].items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
