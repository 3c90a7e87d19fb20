"""The two-phase semi-supervised adversarial VAE (Zemouri) on tiny shapes.

The models run eagerly (`run_eagerly=True`): on 8x8 images a few eager
steps cost less than tracing these deep residual graphs.
"""

import json
import os

import keras
import numpy as np
import pytest

from keras_pae.ssavae import losses, networks, run
from keras_pae.ssavae.__main__ import main
from keras_pae.ssavae.adversarial_decoder import AdversarialDecoder
from keras_pae.ssavae.config import AdversarialVAEConfig
from keras_pae.ssavae.variational_encoder_classifier import VariationalEncoderClassifier
from tests.helpers import assert_round_trips, interrupt_fit

SHAPE = (8, 8, 1)
CLASSES = 3


def _images(n, seed=0):
    return np.random.default_rng(seed).random((n, *SHAPE), dtype=np.float32)


def _vec(seed=0):
    keras.utils.set_random_seed(seed)
    vec = VariationalEncoderClassifier(
        networks.encoder(SHAPE, 2, width=2, hidden=8), networks.classifier(2, CLASSES, hidden=8), seed=seed
    )
    vec.compile(optimizer=keras.optimizers.Adam(1e-2), run_eagerly=True)
    return vec


def _phase2(vec, beta, gamma, decoder=None, n_dis=1, d_rate=1e-3, g_rate=1e-3, alphas=(1.0, 0.1, 0.01)):
    keras.utils.set_random_seed(1)
    model = AdversarialDecoder(
        vec.encoder,
        vec.classifier,
        decoder or networks.decoder(2, SHAPE, width=2, hidden=8),
        networks.discriminator(SHAPE, width=2, hidden=8),
        alphas=alphas,
        beta=beta,
        gamma=gamma,
        n_dis=n_dis,
        seed=1,
    )
    model.compile(
        d_optimizer=keras.optimizers.Adam(d_rate), g_optimizer=keras.optimizers.Adam(g_rate), run_eagerly=True
    )
    return model


def _values(weights):
    return [keras.ops.convert_to_numpy(w) for w in weights]


def test_both_models_round_trip(tmp_path):
    vec = _vec()
    vec.fit(_images(8), np.arange(8) % CLASSES, epochs=1, batch_size=4, verbose=0)
    reloaded = assert_round_trips(vec, _images(4, seed=5), tmp_path)
    assert (reloaded.kl_weight, reloaded.seed) == (vec.kl_weight, vec.seed)
    model = _phase2(vec, beta=0.1, gamma=0.2, n_dis=2, alphas=(1.0, 0.5, 0.25))
    model.fit(_images(8), epochs=1, batch_size=4, verbose=0)
    reloaded = assert_round_trips(model, _images(4, seed=6), tmp_path)
    assert (reloaded.beta, reloaded.gamma, reloaded.n_dis, tuple(reloaded.alphas)) == (0.1, 0.2, 2, (1.0, 0.5, 0.25))
    # Reloaded with both optimizers (rates kept), so training goes on.
    assert float(reloaded.d_optimizer.learning_rate) == pytest.approx(1e-3)
    before = _values(reloaded.decoder.trainable_weights)
    reloaded.fit(_images(8), epochs=1, batch_size=4, verbose=0)
    assert any(np.abs(a - b).max() > 0 for a, b in zip(before, _values(reloaded.decoder.trainable_weights)))


def test_phase2_leaves_encoder_and_classifier_unchanged():
    vec = _vec()
    x = _images(32)
    vec.fit(x, np.arange(32) % CLASSES, batch_size=16, epochs=1, verbose=0)
    frozen = vec.encoder.weights + vec.classifier.weights
    before = _values(frozen)
    # beta, gamma > 0: gradients flow back through the encoder and the classifier.
    model = _phase2(vec, beta=0.5, gamma=1.0, n_dis=2)
    decoder_before = _values(model.decoder.weights)
    discriminator_before = _values(model.discriminator.weights)
    model.fit(x, batch_size=16, epochs=1, verbose=0)
    assert all(np.array_equal(a, keras.ops.convert_to_numpy(w)) for a, w in zip(before, frozen))
    assert not vec.encoder.trainable and not vec.classifier.trainable
    # ...while the decoder and the discriminator did train.
    assert not all(np.array_equal(a, keras.ops.convert_to_numpy(w)) for a, w in zip(decoder_before, model.decoder.weights))
    assert not all(np.array_equal(a, keras.ops.convert_to_numpy(w)) for a, w in zip(discriminator_before, model.discriminator.weights))


def test_discriminator_loss_falls_on_real_versus_noise():
    """Real images are stripes; the 'decoder' is frozen random noise (its optimizer has rate 0)."""
    vec = _vec()
    inputs = keras.Input((2,))
    hidden = keras.layers.Dense(int(np.prod(SHAPE)), kernel_initializer=keras.initializers.RandomNormal(stddev=3.0))(inputs)
    noise = keras.Model(inputs, keras.layers.Reshape(SHAPE)(keras.layers.Activation("sigmoid")(hidden)))
    model = _phase2(vec, beta=0.0, gamma=0.0, decoder=noise, n_dis=4, d_rate=3e-3, g_rate=0.0)
    stripes = np.zeros((64, *SHAPE), np.float32)
    stripes[:, ::2] = 1.0
    stripes *= np.random.default_rng(0).uniform(0.6, 1.0, (64, 1, 1, 1)).astype(np.float32)
    # 4 epochs x 2 batches x 4 discriminator updates.
    # The discriminator's own training loss (on real batches and the decoded noise it is shown).
    d_loss = model.fit(stripes, batch_size=32, epochs=4, verbose=0).history["d_loss"]
    assert d_loss[0] > 1.5  # untrained: scores near 0, targets +-1
    assert d_loss[-1] < 0.5 * d_loss[0]
    assert all(later < earlier for earlier, later in zip(d_loss[1:], d_loss[2:]))


def test_decoder_loss_is_the_weighted_feature_loss_when_beta_and_gamma_are_zero():
    vec = _vec()
    x = _images(16, seed=3)
    alphas = (1.0, 0.1, 0.01)
    model = _phase2(vec, beta=0.0, gamma=0.0, alphas=alphas)
    result = model.evaluate(x, batch_size=16, verbose=0, return_dict=True)

    # Independently: decode mu, read the encoder's first three stages with a model of our own.
    stages = keras.Model(vec.encoder.input, [vec.encoder.get_layer(f"stage{i}").output for i in (1, 2, 3)])
    decoded = model.decoder(vec.encoder(x)[0])
    expected = sum(
        a * np.mean((np.array(f) - np.array(g)) ** 2) for a, f, g in zip(alphas, stages(x), stages(decoded))
    )
    assert result["loss"] == pytest.approx(expected, rel=1e-5)
    assert result["reconstruction_loss"] == pytest.approx(expected, rel=1e-5)
    # The other two terms exist (they are measured) but weigh nothing.
    assert result["adversarial_loss"] > 0 and result["latent_loss"] > 0
    weighted = _phase2(vec, beta=0.3, gamma=2.0, alphas=alphas).evaluate(x, batch_size=16, verbose=0, return_dict=True)
    assert weighted["loss"] == pytest.approx(
        weighted["reconstruction_loss"] + 0.3 * weighted["adversarial_loss"] + 2.0 * weighted["latent_loss"], rel=1e-5
    )
    # Training steps too: loss == reconstruction loss, step by step.
    history = model.fit(x, batch_size=8, epochs=1, verbose=0).history
    assert history["loss"] == history["reconstruction_loss"]


def _train_vec(labels, mask, x):
    vec = _vec(seed=5)
    vec.fit(x, labels, sample_weight=mask, batch_size=16, epochs=1, shuffle=False, verbose=0)
    return _values(vec.weights)


def test_labelled_fraction_ignores_hidden_labels():
    x = _images(48, seed=7)
    labels = (np.arange(48) % CLASSES).astype(np.int32)
    mask = run.labelled_mask(48, 0.25, seed=0)
    assert mask.sum() == 12
    seen, weights = run.hide_labels(labels, mask)
    assert np.all(seen[~mask] == 0) and np.array_equal(seen[mask], labels[mask])

    # The model's own masking: feed it the true hidden labels, then scrambled ones.
    scrambled = labels.copy()
    scrambled[~mask] = (labels[~mask] + 1) % CLASSES
    original = _train_vec(labels, weights, x)
    assert all(np.array_equal(a, b) for a, b in zip(original, _train_vec(scrambled, weights, x)))
    # Control: changing a label the model may see does change the weights.
    visible = labels.copy()
    visible[mask] = (labels[mask] + 1) % CLASSES
    assert not all(np.array_equal(a, b) for a, b in zip(original, _train_vec(visible, weights, x)))


def test_masked_cross_entropy_ignores_masked_examples():
    probabilities = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    labels = np.array([0, 1])
    one = float(losses.masked_categorical_crossentropy(labels, probabilities, np.array([1.0, 0.0])))
    assert one == pytest.approx(-np.log(0.7), rel=1e-6)
    assert float(losses.masked_categorical_crossentropy(np.array([0, 99]), probabilities, np.array([1.0, 0.0]))) == one
    assert float(losses.masked_categorical_crossentropy(labels, probabilities, np.zeros(2))) == 0.0


def test_cli_writes_outputs_and_a_rerun_trains_nothing(tmp_path, capsys, fashion_mnist_dir):
    import tensorflow as tf

    out = tmp_path / "run"
    argv = [
        "--dataset", "fashion_mnist", "--latent-dim", "2", "--epochs", "1", "--limit", "48",
        "--batch-size", "16", "--betas", "0", "--gammas", "0", "--beta", "0", "--gamma", "0",
        "--labelled-fraction", "0.5", "--width", "2", "--hidden", "8", "--data-dir", fashion_mnist_dir, "--out", str(out),
    ]
    tf.config.run_functions_eagerly(True)
    try:
        assert main(argv) == 0
        summary = json.loads((out / "summary.json").read_text())
        assert summary["trained"] == ["phase1", "decoder_beta0_gamma0"]
        assert summary["labelled_images"] == 24 and summary["train_images"] == 48
        # The reported accuracy is that of Class(mu) on the 48 test images, recomputed from the saved networks.
        config = AdversarialVAEConfig.load(out / "config.json")
        _, _, test_x, test_y = run.load_data(config)
        encoder, classifier = networks.encoder((28, 28, 1), 2, 2, 8), networks.classifier(2, 10, 8)
        encoder.load_weights(out / "phase1" / "encoder.weights.h5")
        classifier.load_weights(out / "phase1" / "classifier.weights.h5")
        predicted = np.argmax(keras.ops.convert_to_numpy(classifier(encoder(test_x)[0])), axis=-1)
        assert len(test_y) == 48
        assert summary["phase1"]["test"]["accuracy"] == pytest.approx(np.mean(predicted == test_y), abs=1e-6)
        for name in ("latent_scatter.png", "latent_grid.png", "class_samples.png", "reconstructions.png", "report.md"):
            assert (out / name).stat().st_size > 0, name
        assert (out / "phase1" / "encoder_classifier" / "saved_model.pb").is_file()
        assert (out / "decoder_beta0_gamma0" / "decoder" / "saved_model.pb").is_file()
        stamps = {p: os.stat(p).st_mtime_ns for p in out.rglob("*.weights.h5")}
        assert len(stamps) == 4  # encoder, classifier, decoder, discriminator

        assert main(argv) == 0
        assert json.loads((out / "summary.json").read_text())["trained"] == []
        assert {p: os.stat(p).st_mtime_ns for p in out.rglob("*.weights.h5")} == stamps
        assert "Trained nothing" in capsys.readouterr().out

        # Flags that change a finished phase are refused, in one line.
        assert main(argv[:-2] + ["--seed", "3", "--out", str(out)]) == 2
        assert "different seed" in capsys.readouterr().err
    finally:
        tf.config.run_functions_eagerly(False)


def test_cli_rejects_bad_values(capsys):
    assert main(["--dataset", "svhn"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "fashion_mnist" in err
    assert main(["--labelled-fraction", "0"]) == 2
    assert "labelled-fraction" in capsys.readouterr().err


def test_kl_weight_warms_up_linearly():
    keras.utils.set_random_seed(0)
    vec = VariationalEncoderClassifier(
        networks.encoder(SHAPE, 2, width=2, hidden=8), networks.classifier(2, CLASSES, hidden=8),
        kl_weight=0.2, kl_warmup_steps=10,
    )
    vec.compile(optimizer=keras.optimizers.Adam(1e-3))
    vec.optimizer.build(vec.trainable_variables)
    weights = []
    for step in (0, 5, 10, 40):
        vec.optimizer.iterations.assign(step)
        weights.append(float(vec.current_kl_weight(training=True)))
    assert weights == pytest.approx([0.0, 0.1, 0.2, 0.2])
    assert vec.current_kl_weight(training=False) == 0.2
    # The tracked KL is unweighted; the loss weighs it.
    total, kl, cross_entropy, _ = vec.compute_losses(_images(4), np.zeros(4), training=True)
    assert float(total) == pytest.approx(0.2 * float(kl) + float(cross_entropy), rel=1e-5)


def test_loss_functions_on_hand_computed_values():
    # Eq. 9 with alphas 1, 0.1, 0.01: each layer's mean squared difference, weighted.
    features = [np.array([[1.0, 2.0]]), np.array([[0.0, 0.0, 3.0]]), np.array([[4.0]])]
    decoded = [np.array([[1.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]), np.array([[0.0]])]
    # layer means: (0 + 4) / 2 = 2, (1 + 0 + 9) / 3 = 10 / 3, 16
    expected = 1.0 * 2.0 + 0.1 * 10 / 3 + 0.01 * 16.0
    assert float(losses.feature_reconstruction_loss(features, decoded, (1.0, 0.1, 0.01))) == pytest.approx(expected)
    real, fake = np.array([[1.0], [0.5]]), np.array([[-1.0], [1.5]])
    # Eq. 10: mean (Dis(X) - Dis(X_hat))^2 = (4 + 1) / 2; the discriminator's: real -> +1, decoded -> -1.
    assert float(losses.adversarial_loss(real, fake)) == pytest.approx(2.5)
    assert float(losses.discriminator_loss(real, fake)) == pytest.approx((0 + 0.25) / 2 + (0 + 6.25) / 2)
    # Eq. 11: mean over batch and classes.
    assert float(losses.latent_loss(np.array([[0.2, 0.8], [1.0, 0.0]]), np.array([[0.6, 0.4], [1.0, 0.0]]))) == pytest.approx(
        (0.16 + 0.16) / 4
    )


def test_decoder_losses_equal_numpy_from_the_sub_networks():
    """Each term of Eq. 8-11 (and the discriminator's) recomputed in numpy from the model's own networks."""
    vec = _vec()
    # An untrained classifier's outputs barely move with z; a sharper softmax makes L_latent measurable.
    head = vec.classifier.get_layer("probabilities")
    head.kernel.assign(50.0 * head.kernel)
    x = _images(6, seed=11)
    model = _phase2(vec, beta=0.3, gamma=2.0, alphas=(1.0, 0.1, 0.01))

    def numpy(t):
        return keras.ops.convert_to_numpy(t).astype(np.float64)

    stages = keras.Model(vec.encoder.input, [vec.encoder.get_layer(f"stage{i}").output for i in (1, 2, 3)])
    mu = numpy(vec.encoder(x)[0])
    decoded = numpy(model.decoder(mu))
    reconstruction = sum(
        a * np.mean((numpy(f) - numpy(g)) ** 2) for a, f, g in zip((1.0, 0.1, 0.01), stages(x), stages(decoded))
    )
    real, fake = numpy(model.discriminator(x)), numpy(model.discriminator(decoded))
    adversarial = np.mean((real - fake) ** 2)
    d_loss = np.mean((real - 1) ** 2) + np.mean((fake + 1) ** 2)
    mu_hat, logvar_hat = (numpy(t) for t in vec.encoder(decoded))
    latent = np.mean((numpy(vec.classifier(mu)) - numpy(vec.classifier(mu_hat))) ** 2)
    assert min(reconstruction, adversarial, latent, d_loss) > 1e-6  # every term is really measured

    # Evaluation decodes mu and reads Z_hat's mu.
    result = {k: float(v) for k, v in model.test_step(x).items()}
    assert result["reconstruction_loss"] == pytest.approx(reconstruction, rel=1e-4)
    assert result["adversarial_loss"] == pytest.approx(adversarial, rel=1e-4)
    assert result["latent_loss"] == pytest.approx(latent, rel=1e-4)
    assert result["d_loss"] == pytest.approx(d_loss, rel=1e-4)
    assert result["pixel_loss"] == pytest.approx(np.mean((x - decoded) ** 2), rel=1e-4)
    assert result["loss"] == pytest.approx(reconstruction + 0.3 * adversarial + 2.0 * latent, rel=1e-4)

    # Training samples Z_hat = mu_hat + eps * exp(logvar_hat / 2), eps from the model's seed (1).
    eps = numpy(keras.random.normal(mu_hat.shape, seed=keras.random.SeedGenerator(1)))
    z_hat = mu_hat + eps * np.exp(logvar_hat / 2)
    sampled_latent = np.mean((numpy(vec.classifier(mu)) - numpy(vec.classifier(z_hat))) ** 2)
    fresh = _phase2(vec, beta=0.3, gamma=2.0, alphas=(1.0, 0.1, 0.01))
    fresh.decoder.set_weights(model.decoder.get_weights())
    _, _, _, latent_sampled = fresh.decoder_losses(x, mu, decoded, sample=True)
    assert float(latent_sampled) == pytest.approx(sampled_latent, rel=1e-4)
    assert abs(sampled_latent - latent) > 1e-3 * latent  # the sampling is really there


def test_interrupted_phase_resumes_and_overwrite_starts_over(tmp_path, monkeypatch, capsys, fashion_mnist_dir):
    import tensorflow as tf

    from keras_pae.core.runs import read_history

    out = tmp_path / "run"
    argv = [
        "--dataset", "fashion_mnist", "--latent-dim", "2", "--epochs", "1", "--decoder-epochs", "2", "--limit", "16",
        "--batch-size", "16", "--betas", "0", "--gammas", "0", "--beta", "0", "--gamma", "0", "--width", "2",
        "--hidden", "8", "--data-dir", fashion_mnist_dir, "--out", str(out),
    ]
    decoder = "decoder_beta0_gamma0"
    # SavedModel exports (a third of the time) and the figures are checked by the CLI test above.
    monkeypatch.setattr(run, "_export", lambda model, directory: os.makedirs(directory))
    monkeypatch.setattr(run.plots, "write_all", lambda *args, **kwargs: {})
    tf.config.run_functions_eagerly(True)
    try:
        # Phase 1 finishes; phase 2 is interrupted after its first of two epochs: exit 130 and the hint.
        with monkeypatch.context() as patch:
            interrupt_fit(patch, run, decoder + ".incomplete")
            assert main(argv) == 130
        assert capsys.readouterr().err == "python -m keras_pae.ssavae: interrupted; rerun the same command to resume.\n"
        staging = out / f"{decoder}.incomplete"
        assert (out / "phase1" / "encoder.weights.h5").is_file() and not (out / decoder).exists()
        assert (staging / "backup").is_dir() and not (out / "summary.json").exists()
        before = read_history(staging / "history.csv")
        assert [row["epoch"] for row in before] == [0]
        phase1_stamp = os.stat(out / "phase1" / "encoder.weights.h5").st_mtime_ns

        # The rerun loads phase 1 and continues phase 2 at its second epoch.
        assert main(argv) == 0
        assert json.loads((out / "summary.json").read_text())["trained"] == [decoder]
        assert os.stat(out / "phase1" / "encoder.weights.h5").st_mtime_ns == phase1_stamp
        history_csv = (out / decoder / "history.csv").read_text().splitlines()
        assert len(history_csv) == 3  # header + epochs 0 and 1: epoch 0 was not trained again
        after = read_history(out / decoder / "history.csv")
        assert [row["epoch"] for row in after] == [0, 1] and after[0] == before[0]
        assert not staging.exists() and (out / decoder / "decoder.weights.h5").is_file()

        # --overwrite discards the finished run: phase 1 trains again (interrupted here to keep it short).
        with monkeypatch.context() as patch:
            interrupt_fit(patch, run, "phase1.incomplete")
            assert main([*argv, "--overwrite"]) == 130
        assert sorted(p.name for p in out.iterdir()) == ["config.json", "phase1.incomplete"]
        assert [row["epoch"] for row in read_history(out / "phase1.incomplete" / "history.csv")] == [0]
    finally:
        tf.config.run_functions_eagerly(False)
