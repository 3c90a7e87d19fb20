"""encoder.keras: every run's encoder as a Keras model to fine-tune, and keras_pae.load_encoder."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_pae
from keras_pae import build_perceptual_autoencoder
from keras_pae.core.runs import ENCODER_FILE, save_encoder
from tests.helpers import docs_example

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _same(first, second):
    return len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))


def _images(n=6, side=64, seed=0):
    return np.random.default_rng(seed).random((n, side, side, 3), dtype=np.float32)


def test_an_f_encoder_holds_the_frozen_loss_network_and_loads_in_a_fresh_process(tmp_path):
    images = _images()
    for procedure in ("F-F-FP", "I-I-PW"):
        model = build_perceptual_autoencoder(procedure, z_dim=4, loss_weights="random", seed=0)
        (tmp_path / procedure).mkdir()
        save_encoder(model.embedding_model(), tmp_path / procedure)
        np.save(tmp_path / procedure / "mu.npy", keras.ops.convert_to_numpy(model.encode(images)[0]))
    np.save(tmp_path / "images.npy", images)

    encoder = keras_pae.load_encoder(tmp_path / "F-F-FP")
    loss_network = encoder.get_layer("alexnet_features")
    assert not loss_network.trainable and loss_network.weights and not loss_network.trainable_weights
    assert [w.name for w in encoder.trainable_weights] == ["kernel", "bias"] * 2  # hidden, mu: no logvar head
    frozen_before, network_before = _weights(encoder), _weights(loss_network)
    head = keras.layers.Dense(2)
    model = keras.Sequential([encoder, head])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(images, np.ones((len(images), 2)), epochs=2, batch_size=3, verbose=0)
    assert _same(_weights(loss_network), network_before)  # fine-tuning leaves p alone
    assert not _same(_weights(encoder), frozen_before)  # ...and trains the rest
    with pytest.raises(FileNotFoundError, match="phase1"):
        keras_pae.load_encoder(tmp_path / "missing")

    # A fresh interpreter: importing keras_pae.encoders registers the custom layers (space-to-depth
    # Conv2D in p, FusedBatchNormalization in the image encoder) for keras.saving.load_model.
    script = (
        "import sys, keras, numpy as np\n"
        "import keras_pae.encoders\n"
        "images = np.load(sys.argv[1] + '/images.npy')\n"
        "for procedure in ('F-F-FP', 'I-I-PW'):\n"
        "    encoder = keras.saving.load_model(f'{sys.argv[1]}/{procedure}/encoder.keras')\n"
        "    expected = np.load(f'{sys.argv[1]}/{procedure}/mu.npy')\n"
        "    np.testing.assert_allclose(encoder(images), expected, atol=1e-5)\n"
        "print('loaded both')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert result.returncode == 0 and "loaded both" in result.stdout, result.stderr[-2000:]


def test_the_docs_example_fine_tunes_a_pretrained_encoder(tmp_path, fashion_mnist_dir):
    from keras_pae.perceptual.training import load_run

    run = str(tmp_path / "fashion_mnist_I-F-FP")
    data = repr(fashion_mnist_dir)
    code = docs_example(
        "perceptual.md", "### Fine-tuning the encoder",
        [
            ('"saved_models/fashion_mnist_I-F-FP"', repr(run)),
            ("predictor_epochs=0,", f"predictor_epochs=0, data_dir={data}, limit=128, epochs=1, batch_size=32, z_dim=8,"),
            ('"predictor", limit=1000)', f'"predictor", data_dir={data}, limit=64)'),
            ('"test", limit=2000)', f'"test", data_dir={data}, limit=40)'),
            ("limit=12000, epochs=5, batch_size=64,", ""),
            ("epochs=30", "epochs=2"),
            ("range(3)", "range(1)"),
            ("np.std(values, ddof=1)", "np.std(values)"),
        ],
    )
    keras.utils.set_random_seed(0)
    namespace = {}
    exec(compile(code, "docs/perceptual.md", "exec"), namespace)
    x, y = namespace["x"], namespace["y"]
    assert x.shape == (64, 64, 64, 3) and sorted(namespace["accuracy"]) == ["fine-tuned", "from scratch"]
    # What it reports is the last model's share of correct test labels.
    x_test, y_test = namespace["x_test"], namespace["y_test"]
    predicted = np.argmax(namespace["model"].predict(x_test, verbose=0), axis=1)
    assert namespace["accuracy"]["from scratch"] == [pytest.approx(np.mean(predicted == y_test))]

    # The file is the run's kept encoder: the SavedModel's and the rebuilt autoencoder's mu.
    pretrained = keras_pae.load_encoder(run)
    mu = keras.ops.convert_to_numpy(pretrained(x[:5]))
    exported = tf.saved_model.load(os.path.join(run, "encoder"))  # keep a reference: serve uses its variables
    served = exported.serve(tf.constant(x[:5]))
    np.testing.assert_allclose(mu, served.numpy(), atol=1e-5)
    np.testing.assert_allclose(mu, keras.ops.convert_to_numpy(load_run(run).encode(x[:5])[0]), atol=1e-5)
    assert json.loads(open(os.path.join(run, "summary.json")).read())["procedure"] == "I-F-FP"

    # Fine-tuning trained every encoder weight (batch-norm statistics too); the scratch copy started elsewhere.
    tuned = namespace["encoder"]
    changed = [not np.array_equal(a, b) for a, b in zip(_weights(tuned), _weights(pretrained))]
    assert len(changed) == len(pretrained.weights) and all(changed)
    fresh = keras.models.clone_model(pretrained)
    assert not any(np.array_equal(a, b) for a, b in zip(_weights(fresh), _weights(pretrained)) if a.std() > 0)

    # trainable=False: only the head learns.
    frozen = keras_pae.load_encoder(run, trainable=False)
    assert frozen.trainable_weights == []
    before = _weights(frozen)
    classifier = namespace["classifier"](frozen)
    head_before = _weights(classifier.layers[-1])
    classifier.fit(x, y, batch_size=32, epochs=1, verbose=0)
    assert _same(_weights(frozen), before)
    assert not _same(_weights(classifier.layers[-1]), head_before)


def test_a_bottleneck_configuration_writes_its_encoder(tmp_path, fashion_mnist_dir):
    from keras_pae.bottleneck.study import StudyConfig, load_data, run_study

    config = StudyConfig(
        epochs=1, limit=64, test_limit=32, probe_limit=20, sizes=(3,), compressions=("1/4",),
        residual_blocks=0, batch_size=32, export=False, data_dir=fashion_mnist_dir, out=str(tmp_path / "study"),
    )
    run_study(config, verbose=False, analyse=False)
    run_dir = tmp_path / "study" / "runs" / "s3_c1-4"
    assert not (run_dir / "encoder").exists()  # --no-export skips the SavedModel, not encoder.keras
    encoder = keras_pae.load_encoder(run_dir)
    test_images = load_data(config, verbose=False).test[:20]
    codes = keras.ops.convert_to_numpy(encoder(test_images))
    assert codes.shape == (20, 4, 4, 16)
    np.testing.assert_allclose(codes, np.load(run_dir / "codes_test.npy"), atol=1e-5)
    assert encoder.trainable_weights and keras_pae.load_encoder(run_dir / ENCODER_FILE, trainable=False).trainable_weights == []


def test_the_adversarial_vae_writes_its_phase1_encoder(tmp_path, fashion_mnist_dir):
    from keras_pae.ssavae import networks
    from keras_pae.ssavae.config import AdversarialVAEConfig
    from keras_pae.ssavae.run import load_data, run

    config = AdversarialVAEConfig(
        dataset="fashion_mnist", latent_dim=2, epochs=1, limit=48, batch_size=16, betas=(0.0,), gammas=(0.0,),
        beta=0.0, gamma=0.0, width=2, hidden=8, data_dir=fashion_mnist_dir, out=str(tmp_path / "run"),
    )
    tf.config.run_functions_eagerly(True)  # tiny networks: tracing would cost more than running
    try:
        run(config, verbose=0)
    finally:
        tf.config.run_functions_eagerly(False)
    phase1 = tmp_path / "run" / "phase1"
    encoder = keras_pae.load_encoder(phase1)
    _, _, test_x, _ = load_data(config)
    trained = networks.encoder(test_x.shape[1:], 2, 2, 8)
    trained.load_weights(phase1 / "encoder.weights.h5")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(encoder(test_x)), keras.ops.convert_to_numpy(trained(test_x)[0]), atol=1e-5
    )
    assert encoder.output_shape == (None, 2)
    assert len(encoder.trainable_weights) == len(trained.trainable_weights) - 2  # all but logvar's kernel and bias
