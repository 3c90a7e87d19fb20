"""Cached loss-network features, the fused Adam, mixed precision and MirroredStrategy."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_pae import PROCEDURES, Procedure, alexnet_features, build_perceptual_autoencoder
from keras_pae.perceptual import feature_cache
from keras_pae.perceptual.config import TrainConfig
from keras_pae.data import pipeline
from keras_pae.core.optimizers import FusedAdam
from keras_pae.perceptual.training import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHED = [p for p in PROCEDURES if Procedure.parse(p).needs_loss_network]
# float16 of p(X) - 0.5 in [0, 0.5): at most half a float16 step at 0.5.
FLOAT16_ERROR = 2.0**-13


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (12, 64, 64, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def loss_network():
    return alexnet_features(weights="random")


def _features(loss_network, images):
    model_images = pipeline.to_model_images(images)
    return keras.ops.convert_to_numpy(loss_network(model_images)).reshape(len(images), -1)


def test_cached_features_round_trip(tmp_path, images, loss_network):
    cached = feature_cache.cached_features(loss_network, images, str(tmp_path))
    assert isinstance(cached, np.memmap) and cached.dtype == np.float16
    assert cached.shape == (12, 9408)
    exact = _features(loss_network, images)
    error = np.abs(cached.astype(np.float32) + feature_cache.OFFSET - exact)
    assert error.max() <= FLOAT16_ERROR
    # Stored around 0.5, the typical error is far below float16's step at 0.5 (2^-11).
    assert error.mean() < 2.0**-16
    # Asked again, the same file is read, not recomputed.
    (path,) = tmp_path.glob("features-*.npy")
    mtime = path.stat().st_mtime_ns
    again = feature_cache.cached_features(loss_network, images, str(tmp_path))
    np.testing.assert_array_equal(again, cached)
    assert path.stat().st_mtime_ns == mtime


def test_cache_is_invalidated_by_images_weights_and_size(tmp_path, images, loss_network):
    key = feature_cache.cache_key(loss_network, images)
    changed = images.copy()
    changed[3, 10, 10, 0] ^= 1
    assert feature_cache.cache_key(loss_network, changed) != key
    assert feature_cache.cache_key(loss_network, images[:-1]) != key  # another --limit
    assert feature_cache.cache_key(alexnet_features(weights="random", seed=1), images) != key
    assert feature_cache.cache_key(loss_network, images, image_size=80) != key
    assert feature_cache.cache_key(loss_network, images) == key

    first = np.array(feature_cache.cached_features(loss_network, images, str(tmp_path)))
    second = feature_cache.cached_features(loss_network, images[::-1].copy(), str(tmp_path))
    assert len(list(tmp_path.glob("features-*.npy"))) == 1, "the stale file is removed"
    np.testing.assert_array_equal(np.asarray(second), first[::-1])


@pytest.mark.parametrize("procedure", CACHED)
def test_cached_features_give_the_same_loss(tmp_path, images, loss_network, procedure):
    """Same batch, same weights: the losses with cached p(X) equal the uncached ones."""
    cached = feature_cache.cached_features(loss_network, images, str(tmp_path))
    with_images = Procedure.parse(procedure).needs_images_given_features
    batch = next(iter(pipeline.image_dataset(images, 12, features=cached, with_images=with_images)))
    assert sorted(batch) == (["features", "images"] if with_images else ["features"])
    model_images = pipeline.to_model_images(images)

    keras.utils.set_random_seed(0)
    model = build_perceptual_autoencoder(procedure, z_dim=8, loss_network=loss_network, seed=0)
    uncached_loss = float(model.compute_losses(model_images)[0])
    cached_loss = float(model.compute_losses(batch.get("images"), features=batch["features"])[0])
    assert cached_loss == pytest.approx(uncached_loss, rel=2e-3)

    # One training step each from the same weights: the same loss and update
    # (SGD: Adam's first step is lr * sign(g), which hides the gradient).
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    initial = [w.numpy() for w in model.weights]
    model.reset_metrics()
    uncached_step = float(model.train_step(model_images)["loss"])
    uncached_weights = [w.numpy() for w in model.trainable_weights]
    for weight, value in zip(model.weights, initial):
        weight.assign(value)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.reset_metrics()
    cached_step = float(model.train_step(batch)["loss"])
    assert cached_step == pytest.approx(uncached_step, rel=2e-3)
    initial_trainable = [v for w, v in zip(model.weights, initial) if w.trainable]
    uncached_delta = np.concatenate([(u - i).ravel() for u, i in zip(uncached_weights, initial_trainable)])
    cached_delta = np.concatenate([(w.numpy() - i).ravel() for w, i in zip(model.trainable_weights, initial_trainable)])
    scale = np.abs(uncached_delta).max()
    assert scale > 0
    # Within 1% of the largest update, plus float32 rounding of each updated weight (one
    # spacing at its magnitude: batch-norm scales start at 1, where small updates round).
    rounding = np.spacing(np.abs(np.concatenate([i.ravel() for i in initial_trainable])).astype(np.float32))
    assert np.all(np.abs(cached_delta - uncached_delta) <= 1e-2 * scale + rounding)
    validation = {}
    for name, data in (("cached", batch), ("uncached", model_images)):
        model.reset_metrics()
        validation[name] = float(model.test_step(data)["loss"])
    assert validation["cached"] == pytest.approx(validation["uncached"], rel=2e-3)


def test_feature_encoder_reads_the_cache_in_the_uncached_order(tmp_path, images, loss_network):
    """F-*: the encoder input comes from the cache, batch for batch as without it."""
    cached = feature_cache.cached_features(loss_network, images, str(tmp_path))
    plain = list(pipeline.image_dataset(images, 5, shuffle=True, seed=3))
    only_features = list(pipeline.image_dataset(images, 5, shuffle=True, seed=3, features=cached, with_images=False))
    both = list(pipeline.image_dataset(images, 5, shuffle=True, seed=3, features=cached))
    assert [len(b) for b in plain] == [len(b["features"]) for b in only_features] == [5, 5, 2]
    model = build_perceptual_autoencoder("F-F-FP", z_dim=8, loss_network=loss_network)
    for plain_batch, feature_batch, both_batch in zip(plain, only_features, both):
        np.testing.assert_array_equal(both_batch["images"], plain_batch)
        np.testing.assert_array_equal(both_batch["features"], feature_batch["features"])
        exact = keras.ops.convert_to_numpy(model.features(plain_batch))
        np.testing.assert_allclose(feature_batch["features"], exact, atol=FLOAT16_ERROR)
        mu_cached, _ = model.encoder(feature_batch["features"])
        mu, _ = model.encode(plain_batch)
        np.testing.assert_allclose(mu_cached, mu, atol=1e-3)


def test_pipelines_run_without_the_autotuner(tmp_path, images, loss_network):
    """Deleting an autotuned iterator waits out its tuner's timer: seconds idle at epoch starts."""
    cached = feature_cache.cached_features(loss_network, images, str(tmp_path))
    datasets = [
        pipeline.image_dataset(images, 5, shuffle=True, seed=3),
        pipeline.image_dataset(images, 5, labels=np.arange(len(images))),
        pipeline.image_dataset(images, 5, shuffle=True, seed=3, features=cached),
        pipeline.image_dataset(images, 5, features=cached, with_images=False),
    ]
    for dataset in datasets:
        assert dataset.options().autotune.enabled is False
    # Iterated twice, still two different shuffles of every image.
    first, second = (np.concatenate(list(datasets[0])) for _ in range(2))
    np.testing.assert_array_equal(np.sort(first, axis=0), np.sort(second, axis=0))
    assert not np.array_equal(first, second)


def test_training_with_and_without_the_cache(tmp_path):
    small = dict(limit=120, steps=40, batch_size=32, z_dim=8, loss_weights="random", predictor_epochs=0, epochs=1)
    runs = {
        mode: train(TrainConfig(procedure="F-F-FP", feature_cache=mode, out=str(tmp_path / mode), **small), verbose=0)
        for mode in ("auto", "off")
    }
    cached, uncached = (runs[m]["history"][0] for m in ("auto", "off"))
    assert cached["loss"] == pytest.approx(uncached["loss"], rel=1e-3)
    assert cached["val_loss"] == pytest.approx(uncached["val_loss"], rel=1e-3)
    assert runs["auto"]["config"]["feature_cache"] == "auto" and runs["off"]["config"]["feature_cache"] == "off"
    assert not (tmp_path / "auto" / "features").exists()
    with pytest.raises(ValueError, match="auto, off"):
        TrainConfig(feature_cache="always").validate()


def test_fused_adam_matches_adam():
    rng = np.random.default_rng(0)
    initial = rng.normal(size=(30, 20)).astype("float32")
    gradients = [rng.normal(size=(30, 20)).astype("float32") * scale for scale in (1, 0.1, 1e-4, 10)]
    results = []
    for optimizer in (keras.optimizers.Adam(1e-2), FusedAdam(1e-2)):
        variable = keras.Variable(initial)
        for gradient in gradients:
            optimizer.apply([gradient], [variable])
        results.append(variable.numpy())
    assert np.abs(results[1] - initial).max() > 0.01
    np.testing.assert_allclose(results[1], results[0], atol=1e-6)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(FusedAdam(3e-4)))
    assert isinstance(restored, FusedAdam) and float(restored.learning_rate) == pytest.approx(3e-4)


@pytest.mark.parametrize("dtype", ["float32", "float64"])  # the fused kernel, and the op-by-op fallback
def test_torch_adam_follows_pytorch_where_keras_adam_does_not(dtype):
    """`adam(lr, "torch")` steps as torch.optim.Adam; with gradients as small as the PS loss's
    (~1e-7), Keras's epsilon placement takes visibly different steps."""
    import torch

    from keras_pae.core.optimizers import adam

    rng = np.random.default_rng(0)
    initial = rng.normal(size=(30, 20))
    gradients = [rng.normal(size=(30, 20)) * 1e-7 for _ in range(5)] + [rng.normal(size=(30, 20))]
    parameter = torch.nn.Parameter(torch.tensor(initial))
    reference = torch.optim.Adam([parameter], lr=1e-2)
    for gradient in gradients:
        parameter.grad = torch.tensor(gradient)
        reference.step()
    expected = parameter.detach().numpy()
    results = {}
    for arithmetic in ("torch", "keras"):
        variable = keras.Variable(initial.astype(dtype), dtype=dtype)
        optimizer = adam(1e-2, arithmetic)
        for gradient in gradients:
            optimizer.apply([gradient.astype(dtype)], [variable])
        results[arithmetic] = variable.numpy()
    np.testing.assert_allclose(results["torch"], expected, rtol=0, atol=1e-6)
    assert np.abs(results["keras"] - expected).max() > 1e-3
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(adam(1e-3, "torch")))
    assert restored.bias_corrected_epsilon and restored.epsilon == pytest.approx(1e-8)


def test_mixed_precision_keeps_the_loss_network_and_loss_in_float32(images):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = build_perceptual_autoencoder("I-I-PS", z_dim=8, loss_weights="random", seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        assert model.decoder.dtype_policy.compute_dtype == "float16"
        assert model.loss_network.dtype_policy.name == "float32"
        logs = model.train_step(pipeline.to_model_images(images[:4]))
    finally:
        keras.config.set_dtype_policy(previous)
    assert logs["loss"].dtype == "float32" and np.isfinite(float(logs["loss"]))


def test_mixed_precision_refuses_without_a_gpu_or_bfloat16_cpu(tmp_path, monkeypatch):
    import tensorflow as tf

    from keras_pae.core import devices

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda device_type=None: [])
    monkeypatch.setattr(devices, "cpu_has_bfloat16", lambda: False)
    config = TrainConfig(limit=80, steps=40, loss_weights="random", mixed_precision=True, out=str(tmp_path / "mp"))
    with pytest.raises(ValueError, match="needs a GPU .* or a CPU with bfloat16"):
        train(config, verbose=0)
    assert not (tmp_path / "mp.incomplete").exists()
    monkeypatch.setattr(devices, "cpu_has_bfloat16", lambda: True)
    assert devices.mixed_precision_policy() == "mixed_bfloat16"
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda device_type=None: ["GPU:0"] if device_type == "GPU" else [])
    assert devices.mixed_precision_policy() == "mixed_float16"


@pytest.mark.parametrize(
    "cpuinfo, expected",
    [
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n", True),
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw amx_bf16 amx_tile\n", True),
        ("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n", False),
        ("processor\t: 0\nFeatures\t: fp asimd sve i8mm bf16\n", True),
        ("processor\t: 0\nFeatures\t: fp asimd evtstrm crc32\n", False),
        (None, False),
    ],
)
def test_cpu_has_bfloat16_reads_the_cpu_flags(tmp_path, cpuinfo, expected):
    from keras_pae.core.devices import cpu_has_bfloat16

    path = tmp_path / "cpuinfo"
    if cpuinfo is not None:
        path.write_text(cpuinfo)
    assert cpu_has_bfloat16(str(path)) is expected


@pytest.mark.parametrize("procedure", ["I-I-PS", "I-F-FP"])
def test_bfloat16_training_follows_float32(images, procedure):
    """mixed_bfloat16: float32 weights, float32 loss, the same loss and gradient up to bfloat16 rounding."""
    from keras_pae.core.devices import dtype_policy

    batch = pipeline.to_model_images(images)
    reference = build_perceptual_autoencoder(procedure, z_dim=8, loss_weights="random", seed=0)
    with dtype_policy("mixed_bfloat16"):
        mixed = build_perceptual_autoencoder(procedure, z_dim=8, loss_weights="random", seed=0)
    mixed.set_weights(reference.get_weights())
    assert mixed.encoder.dtype_policy.compute_dtype == "bfloat16"
    assert mixed.loss_network.dtype_policy.name == "float32"
    assert all(w.dtype == "float32" for w in mixed.weights)

    def loss_and_gradient(model):
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = model.compute_losses(batch, training=True)[0]
        gradients = tape.gradient(loss, model.trainable_weights)
        return loss, np.concatenate([np.ravel(g) for g in gradients if g is not None])

    loss, gradient = loss_and_gradient(reference)
    mixed_loss, mixed_gradient = loss_and_gradient(mixed)
    assert mixed_loss.dtype == "float32"
    # bfloat16 keeps 8 significant bits: 2^-9 relative rounding per value.
    assert float(mixed_loss) == pytest.approx(float(loss), rel=2e-3)
    assert float(mixed_loss) != float(loss), "the mixed model computed in float32"
    cosine = gradient @ mixed_gradient / (np.linalg.norm(gradient) * np.linalg.norm(mixed_gradient))
    assert cosine > 0.99


def test_bfloat16_run_evaluates_and_exports_in_float32(tmp_path, monkeypatch):
    """A --mixed-precision run on a bfloat16 CPU trains, then its embeddings come from float32 networks."""
    import tensorflow as tf

    from keras_pae.core import devices
    from keras_pae.perceptual import training

    monkeypatch.setattr(devices, "cpu_has_bfloat16", lambda: True)
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda device_type=None: [])
    out = tmp_path / "bf16"
    config = TrainConfig(
        limit=96, rollouts=4, steps=40, epochs=2, batch_size=32, loss_weights="random", predictor_epochs=2,
        predictor_rollouts=2, test_rollouts=2, mixed_precision=True, out=str(out),
    )
    summary = train(config, verbose=0)
    assert summary["epochs_run"] == 2 and np.isfinite(summary["best_val_loss"])
    assert summary["predictors"] is not None
    assert keras.config.dtype_policy().name == "float32", "the policy is restored"
    rebuilt = training.load_run(str(out))
    assert rebuilt.encoder.dtype_policy.name == "float32"
    probe = pipeline.to_model_images(np.random.default_rng(1).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8))
    exported = tf.saved_model.load(str(out / "encoder"))
    np.testing.assert_allclose(
        exported.serve(probe).numpy(), keras.ops.convert_to_numpy(rebuilt.embedding_model()(probe)), rtol=1e-5, atol=1e-6
    )


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import tensorflow as tf

    # Two logical devices on the one CPU, before TensorFlow initialises.
    (cpu,) = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    def main():
        import numpy as np
        from keras_pae.perceptual.config import TrainConfig
        from keras_pae.core.devices import distribution_strategy
        from keras_pae.perceptual.training import load_run, train

        config = TrainConfig(
            procedure="I-F-FP", gamma=0.01, limit=120, steps=40, batch_size=32, z_dim=8, epochs=2,
            loss_weights="random", predictor_epochs=0, distribute="mirrored", out=sys.argv[1],
        )
        summary = train(config, verbose=0)
        trained = load_run(sys.argv[1]).encoder.get_layer("conv0").kernel.numpy()
        # The same seed's initial weights, for "training changed them".
        import keras
        from keras_pae import build_perceptual_autoencoder
        keras.utils.set_random_seed(config.seed)
        initial = build_perceptual_autoencoder("I-F-FP", z_dim=8, gamma=0.01, loss_weights="random", seed=0)
        print(json.dumps({
            "replicas": distribution_strategy("mirrored").num_replicas_in_sync,
            "losses": [row["loss"] for row in summary["history"]],
            "val_losses": [row["val_loss"] for row in summary["history"]],
            "changed": float(np.abs(trained - initial.encoder.get_layer("conv0").kernel.numpy()).max()),
        }))

    if __name__ == "__main__":
        main()
    """
)


def test_mirrored_strategy_trains_on_two_logical_devices(tmp_path):
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600, cwd=ROOT, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert all(np.isfinite(report["losses"] + report["val_losses"]))
    assert report["losses"][1] < report["losses"][0]
    assert report["changed"] > 1e-4
    assert (tmp_path / "run" / "encoder" / "saved_model.pb").exists()


def test_predictor_steps_per_execution_trains_the_same():
    from keras_pae.evaluation import predictors

    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(200, 6)).astype("float32"), rng.normal(size=(200, 2)).astype("float32")
    # 200 / 16: 13 batches, the last one partial; 13 steps per call is the whole epoch.
    steps = predictors.batches_per_epoch(len(x), 16)
    assert (steps, predictors.steps_per_execution(steps)) == (13, 13)
    histories = []
    for per_call in (1, predictors.steps_per_execution(steps)):
        keras.utils.set_random_seed(0)
        model = predictors.predictor_mlp(6, (8,), 2, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse", steps_per_execution=per_call)
        batches = predictors.training_batches(x, y, 16, seed=0)
        history = model.fit(batches, steps_per_epoch=steps, shuffle=False, validation_data=(x[:50], y[:50]), epochs=3, verbose=0)
        histories.append(history.history)
    assert histories[1]["loss"] == pytest.approx(histories[0]["loss"], rel=1e-5)
    assert histories[1]["val_loss"] == pytest.approx(histories[0]["val_loss"], rel=1e-5)
    assert histories[0]["loss"][-1] < histories[0]["loss"][0]


def test_predictor_calls_never_straddle_epochs():
    from keras_pae.evaluation.predictors import STEPS_PER_EXECUTION, steps_per_execution

    for steps in range(1, 200):
        per_call = steps_per_execution(steps)
        assert steps % per_call == 0 and per_call <= STEPS_PER_EXECUTION
        # No larger divisor was left out.
        assert not any(steps % d == 0 for d in range(per_call + 1, min(steps, STEPS_PER_EXECUTION) + 1))


@pytest.mark.parametrize("policy, rtol", [("float32", 1e-5), ("mixed_bfloat16", 2e-2)])
def test_fused_batch_normalization_matches_keras(monkeypatch, policy, rtol):
    """Same outputs, gradients and moving statistics; under mixed bfloat16 up to its rounding, without falling back."""
    import tensorflow as tf

    from keras_pae.perceptual.fused_batch_normalization import FusedBatchNormalization
    from keras_pae.core.devices import dtype_policy

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(2, 3, size=(8, 5, 5, 6)).astype("float32"))
    weights = tf.constant(rng.normal(size=(8, 5, 5, 6)).astype("float32"))
    results = []
    for layer_class in (keras.layers.BatchNormalization, FusedBatchNormalization):
        if layer_class is FusedBatchNormalization:
            # From here on, Keras's computation fails: the fused layer must not fall back to it.
            monkeypatch.setattr(keras.layers.BatchNormalization, "call", lambda *a, **k: pytest.fail("fell back"))
        with dtype_policy(policy):
            layer = layer_class(momentum=0.9, epsilon=1e-5)
        layer.build(x.shape)
        layer.gamma.assign(np.linspace(0.5, 1.5, 6))
        layer.beta.assign(np.linspace(-1, 1, 6))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(y, "float32") * weights)
        gradients = tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])
        assert y.dtype == layer.compute_dtype and layer.moving_mean.dtype == "float32"
        results.append(
            [y, *gradients, layer.moving_mean, layer.moving_variance, layer(x, training=False)]
        )
    for keras_value, fused_value in zip(*results):
        keras_value = np.asarray(tf.cast(keras_value, "float32"))
        fused_value = np.asarray(tf.cast(fused_value, "float32"))
        np.testing.assert_allclose(fused_value, keras_value, rtol=rtol, atol=rtol * np.abs(keras_value).max())
    assert np.abs(np.asarray(results[1][4])).max() > 0.1  # the moving mean moved


def _same_layer_outputs_and_gradients(fast, plain, shape, rtol):
    import tensorflow as tf

    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=shape).astype(np.float32))
    fast.build(shape)
    plain.build(shape)
    weights = [rng.normal(scale=0.1, size=v.shape).astype(np.float32) for v in plain.weights]
    fast.set_weights(weights)
    plain.set_weights(weights)
    results = []
    for layer in (fast, plain):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.square(y))
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_weights])])
    for a, b in zip(*results):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=rtol, atol=rtol * float(np.abs(b.numpy()).max()))


@pytest.mark.parametrize(
    "shape, kernel, stride",
    [((2, 68, 68, 3), 11, 4), ((2, 100, 100, 3), 11, 4), ((2, 31, 31, 5), 4, 2), ((2, 13, 10, 5), 3, 2), ((2, 17, 17, 2), 5, 3)],
)
def test_space_to_depth_convolution_matches_keras(shape, kernel, stride):
    from keras_pae.perceptual.alexnet import Conv2D

    # AlexNet's first layer at 64 and 96 px, and sides that are not whole blocks.
    _same_layer_outputs_and_gradients(
        Conv2D(6, kernel, strides=stride), keras.layers.Conv2D(6, kernel, strides=stride), shape, rtol=1e-4
    )


@pytest.mark.parametrize("shape", [(3, 1, 1, 16), (3, 3, 3, 16)])
def test_one_pixel_transposed_convolution_matches_keras(shape):
    from keras_pae.perceptual.conv_transpose import Conv2DTranspose

    # 1x1: the matrix-product path (the 64x64 decoder); 3x3: Keras's own (96x96).
    _same_layer_outputs_and_gradients(
        Conv2DTranspose(8, 5, strides=2, activation="relu"),
        keras.layers.Conv2DTranspose(8, 5, strides=2, activation="relu"),
        shape,
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    "shape, kernel, stride",
    # The 64x64 decoder's last two layers, a non-square input, 4x4 / 2 and 6x6 / 3 (sub-pixel);
    # 5x5 / 2 is not a whole number of strides (Keras's computation).
    [((2, 30, 30, 4), 6, 2), ((2, 13, 13, 6), 6, 2), ((2, 7, 4, 3), 6, 2), ((2, 5, 5, 3), 4, 2), ((2, 4, 4, 3), 6, 3), ((2, 5, 5, 4), 5, 2)],
)
def test_subpixel_transposed_convolution_matches_keras(shape, kernel, stride):
    from keras_pae.perceptual.conv_transpose import Conv2DTranspose

    _same_layer_outputs_and_gradients(
        Conv2DTranspose(3, kernel, strides=stride, activation="sigmoid"),
        keras.layers.Conv2DTranspose(3, kernel, strides=stride, activation="sigmoid"),
        shape,
        rtol=1e-5,
    )


@pytest.mark.parametrize("shape, outputs", [((2, 6, 6, 5), (2, 2)), ((2, 7, 4, 5), (2, 1)), ((2, 8, 8, 5), (3, 3))])
def test_patch_convolution_matches_keras(monkeypatch, shape, outputs):
    from keras_pae.perceptual.patch_conv import Conv2D

    fast, plain = Conv2D(4, 4, strides=2, activation="relu"), keras.layers.Conv2D(4, 4, strides=2, activation="relu")
    assert plain.compute_output_shape(shape)[1:3] == outputs
    if outputs[0] * outputs[1] <= 4:
        # The 64x64 encoder's last layer and a non-square one: the matrix product, not Keras's computation.
        keras_call = keras.layers.Conv2D.convolution_op
        monkeypatch.setattr(keras.layers.Conv2D, "convolution_op", lambda layer, x, k: pytest.fail("fell back") if layer is fast else keras_call(layer, x, k))
    # 3x3 outputs: Keras's own.
    _same_layer_outputs_and_gradients(fast, plain, shape, rtol=1e-5)


def test_fast_layers_read_weight_files_of_keras_layers(tmp_path, monkeypatch):
    from keras_pae.perceptual import alexnet, networks

    # Encoder, decoder and loss network built with Keras's own layers, as older runs were...
    monkeypatch.setattr(networks, "Conv2D", keras.layers.Conv2D)
    monkeypatch.setattr(networks, "Conv2DTranspose", keras.layers.Conv2DTranspose)
    monkeypatch.setattr(alexnet, "Conv2D", keras.layers.Conv2D)
    plain = build_perceptual_autoencoder("I-I-PS", loss_weights="random", seed=1)
    plain.save_weights(tmp_path / "plain.weights.h5")
    monkeypatch.undo()
    fast = build_perceptual_autoencoder("I-I-PS", loss_weights="random", seed=2)
    assert type(fast.decoder.get_layer("deconv0")) is not keras.layers.Conv2DTranspose
    assert type(fast.encoder.get_layer("conv3")) is not keras.layers.Conv2D
    # ...load into the fast layers and compute the same.
    fast.load_weights(tmp_path / "plain.weights.h5")
    images = np.random.default_rng(4).random((2, 64, 64, 3), dtype=np.float32)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(fast.compute_losses(images)[0]),
        keras.ops.convert_to_numpy(plain.compute_losses(images)[0]),
        rtol=1e-4,
    )


def test_bench_targets_compare_defaults():
    """The bench's target lines use each procedure's default: cached p(X) where it was measured."""
    from bench.throughput import Row, target_lines

    rows = [Row("I-I-PS", 400.0, 250.0, 440.0, 350e6, 300e6), Row("I-F-FP", 600.0, 300.0, 900.0, 250e6, 200e6)]
    pytorch, ratio = target_lines(rows)
    assert "1.76×" in pytorch  # 440 / 250, not 400 / 250
    assert "2.05×" in ratio  # 900 / 440
    # Arithmetic 300 / 200 = 1.5x, so 2x needs 1.33x the FLOP rate; measured (900 * 200) / (440 * 300).
    assert "1.50×" in ratio and "1.33×" in ratio and "1.36×" in ratio
    # Without PyTorch or a cache: the uncached rate, and no PyTorch line.
    (ratio,) = target_lines([Row("I-I-PS", 400.0), Row("I-F-FP", 600.0)])
    assert "1.50×" in ratio
    assert target_lines([Row("I-F-FP", 600.0, 300.0, 900.0)]) == []


def test_bench_counts_the_spec_architectures_arithmetic():
    """`training_flop` against a count by hand from the layer sizes of the feature-prediction paper, Sec. IV-V (64x64, z 64)."""
    from bench.throughput import training_flop

    # Per image: (output positions or, transposed, input positions) x kernel size.
    encoder_convs = [31 * 31 * 4 * 4 * 3 * 32, 14 * 14 * 4 * 4 * 32 * 64, 6 * 6 * 4 * 4 * 64 * 128, 2 * 2 * 4 * 4 * 128 * 256]
    image_decoder = [64 * 1024, 1 * 5 * 5 * 1024 * 128, 5 * 5 * 5 * 5 * 128 * 64, 13 * 13 * 6 * 6 * 64 * 32, 30 * 30 * 6 * 6 * 32 * 3]
    loss_network = 15 * 15 * 11 * 11 * 3 * 64 + 7 * 7 * 5 * 5 * 64 * 192
    feature_decoder = [64 * 2048, 2048 * 9408]

    def trained(first, rest):
        # The first layer reads the data: forward and weight gradient only;
        # every other layer also passes its input gradient back.
        return 2 * first + 3 * sum(rest)

    # A plain autoencoder computes its logvar head but never trains it.
    image_encoder = trained(encoder_convs[0], encoder_convs[1:] + [1024 * 64]) + 1024 * 64
    feature_encoder = trained(9408 * 2048, [2048 * 64]) + 2048 * 64
    expected = {
        "I-I-PW": image_encoder + 3 * sum(image_decoder),
        "I-I-PS": image_encoder + 3 * sum(image_decoder) + 2 * loss_network,  # p forward and input gradient
        "I-F-FP": image_encoder + 3 * sum(feature_decoder),
        "F-F-FP": feature_encoder + 3 * sum(feature_decoder),
    }
    for procedure, multiply_adds in expected.items():
        model = build_perceptual_autoencoder(procedure, loss_weights="random", seed=0)
        cached = 2 * multiply_adds
        assert training_flop(model, cached=True) == cached, procedure
        # Uncached: p(X) forward on the batch when the procedure uses p.
        uncached = cached + 2 * loss_network if model.loss_network is not None else cached
        assert training_flop(model) == uncached, procedure
