"""keras_pae.losses and keras_pae.metrics: the PS and FP losses as Keras objects, in any model's compile."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_pae import alexnet_features, build_perceptual_autoencoder
from keras_pae.data.local_files import idx_split
from keras_pae.losses import FeaturePredictionLoss, PerceptualLoss
from keras_pae.metrics import PerceptualDistance
from tests.helpers import docs_example


@pytest.fixture(scope="module")
def network():
    # Trained weights: a network rebuilt from its config alone (seeded random init) differs.
    return alexnet_features((None, None, 3), weights="fashion_mnist")


def _images(seed, n=4, side=32, channels=3):
    return np.random.default_rng(seed).random((n, side, side, channels), dtype=np.float32)


def _numpy(x):
    return keras.ops.convert_to_numpy(x)


def _features(network, images):
    return _numpy(network(images)).reshape(len(images), -1)


def test_perceptual_loss_is_the_feature_mse_of_each_image(network):
    a, b = _images(0), _images(1)
    expected = np.mean((_features(network, a) - _features(network, b)) ** 2, axis=1)
    per_image = _numpy(PerceptualLoss(network, reduction=None)(a, b))
    np.testing.assert_allclose(per_image, expected, rtol=1e-5)
    assert float(PerceptualLoss(network)(a, b)) == pytest.approx(expected.mean(), rel=1e-5)
    # Keras's sample weights: sum(w * loss) / N.
    weighted = PerceptualLoss(network)(a, b, sample_weight=np.array([1.0, 0.0, 0.0, 2.0]))
    assert float(weighted) == pytest.approx((expected[0] + 2 * expected[3]) / 4, rel=1e-5)
    assert float(PerceptualLoss(network)(a, a)) == 0.0


def test_value_range_rescales_and_grey_images_are_repeated_to_rgb(network):
    a, b = _images(2), _images(3)
    reference = float(PerceptualLoss(network)(a, b))
    assert reference > 0
    assert float(PerceptualLoss(network, value_range=(0, 255))(255 * a, 255 * b)) == pytest.approx(reference, rel=1e-4)
    assert float(PerceptualLoss(network, value_range=(-1, 1))(2 * a - 1, 2 * b - 1)) == pytest.approx(reference, rel=1e-4)
    grey_a, grey_b = a[..., :1], b[..., :1]
    assert float(PerceptualLoss(network)(grey_a, grey_b)) == pytest.approx(
        float(PerceptualLoss(network)(np.repeat(grey_a, 3, -1), np.repeat(grey_b, 3, -1))), rel=1e-6
    )
    with pytest.raises(ValueError, match="1 or 3"):
        PerceptualLoss(network)(np.zeros((2, 32, 32, 2)), np.zeros((2, 32, 32, 2)))


def test_images_outside_the_value_range_are_refused(network):
    a = _images(4)
    with pytest.raises(ValueError, match=r"value_range=\(0, 1\).*Got values in \[0\.\d+, 25\d"):
        PerceptualLoss(network)(255 * a, a)
    PerceptualLoss(network)(np.clip(a * 1.0005, 0, 1.0005), a)  # float rounding is tolerated
    PerceptualLoss(network)(a, 255 * a)  # y_pred is not checked
    # Inside fit the check is part of the compiled step.
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1)(inputs))
    model.compile(optimizer="adam", loss=PerceptualLoss(network))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"value_range=\(0, 1\)"):
        model.fit(255 * a, 255 * a, epochs=1, verbose=0)
    model.compile(optimizer="adam", loss=PerceptualLoss(network, value_range=(0, 255)))
    assert np.isfinite(model.fit(255 * a, 255 * a, epochs=1, verbose=0).history["loss"][0])


def test_bad_arguments_name_the_valid_ones(network):
    with pytest.raises(ValueError, match="low < high"):
        PerceptualLoss(network, value_range=(1, 0))
    with pytest.raises(ValueError, match="two numbers"):
        PerceptualLoss(network, value_range=(0, 1, 2))
    with pytest.raises(ValueError, match="'imagenet', 'fashion_mnist', 'random'"):
        PerceptualLoss(3)
    with pytest.raises(FileNotFoundError, match="missing.weights.h5"):
        FeaturePredictionLoss("missing.weights.h5")
    with pytest.raises(ValueError, match="imagenet_normalize"):
        PerceptualLoss(network, imagenet_normalize=True)


def test_feature_prediction_loss_takes_flat_or_shaped_features(network):
    images = _images(5)
    target = _numpy(network(images))
    predicted = np.random.default_rng(6).random(target.shape, dtype=np.float32)
    expected = np.mean((target.reshape(4, -1) - predicted.reshape(4, -1)) ** 2, axis=1)
    loss = FeaturePredictionLoss(network, reduction=None)
    np.testing.assert_allclose(_numpy(loss(images, predicted)), expected, rtol=1e-5)
    np.testing.assert_allclose(_numpy(loss(images, predicted.reshape(4, -1))), expected, rtol=1e-5)
    with pytest.raises(ValueError, match=f"holds 10 features per example, the loss network gives {target[0].size}"):
        loss(images, np.zeros((4, 10), np.float32))


def test_perceptual_autoencoder_computes_the_same_losses():
    """Its PS and FP terms are these classes' values, and its weight files keep their layout."""
    images = _images(7, side=64)
    p = alexnet_features(weights="random")
    for procedure, loss in (("I-I-PS", PerceptualLoss(p)), ("I-F-FP", FeaturePredictionLoss(p))):
        model = build_perceptual_autoencoder(procedure, z_dim=4, loss_network=p)
        _, reconstruction, _ = model.compute_losses(images)
        assert float(reconstruction) == pytest.approx(float(loss(images, model(images))), rel=1e-5), procedure
        assert float(reconstruction) > 0


def test_weight_files_hold_the_loss_network_once(tmp_path):
    import h5py

    model = build_perceptual_autoencoder("I-I-PS", z_dim=4, loss_weights="random")
    model.save_weights(tmp_path / "ps.weights.h5")
    kernels = []
    with h5py.File(tmp_path / "ps.weights.h5") as f:
        f.visititems(lambda name, item: kernels.append(name) if isinstance(item, h5py.Dataset) else None)
    # The groups weight files had before the loss objects: p under "layers", nothing under the loss object.
    assert {name.split("/")[0] for name in kernels} == {"encoder", "decoder", "layers"}
    # encoder 4 conv + 4 BN + 2 heads, decoder dense + 4 deconv + 3 BN, p 2 conv: p stored once.
    assert len(kernels) == (4 * 2 + 4 * 4 + 2 * 2) + (2 + 4 * 2 + 3 * 4) + 2 * 2


def test_losses_and_metric_round_trip(network, tmp_path):
    a, b = _images(8), _images(9)
    for loss in (
        PerceptualLoss("random", value_range=(0, 255), reduction="sum", name="ps"),
        FeaturePredictionLoss("fashion_mnist", imagenet_normalize=True),
    ):
        restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
        assert type(restored) is type(loss) and restored.get_config() == loss.get_config()
    ps = PerceptualLoss("random", value_range=(0, 255), reduction="sum", name="ps")
    restored = PerceptualLoss.from_config(ps.get_config())
    assert float(restored(255 * a, 255 * b)) == pytest.approx(float(ps(255 * a, 255 * b)), rel=1e-6)

    # A model compiled with a loss on a passed-in network and the metric on a named one:
    # the .keras file keeps the passed network's weights, which its config alone would not give.
    inputs = keras.Input((32, 32, 3))
    image = keras.layers.Conv2D(3, 1, activation="sigmoid", name="image")(inputs)
    features = keras.layers.Conv2D(192, 11, strides=10, name="features")(inputs)  # 3x3x192, as p gives
    model = keras.Model(inputs, {"image": image, "features": features})
    model.compile(
        optimizer="adam",
        loss={"image": "mse", "features": FeaturePredictionLoss(network)},
        metrics={"image": [PerceptualDistance("fashion_mnist")]},
    )
    targets = {"image": a, "features": a}
    model.fit(a, targets, epochs=1, verbose=0)
    before = model.evaluate(a, targets, verbose=0, return_dict=True)
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    after = reloaded.evaluate(a, targets, verbose=0, return_dict=True)
    assert sorted(after) == sorted(before) and "image_perceptual_distance" in after
    for key, value in before.items():
        assert after[key] == pytest.approx(value, rel=1e-5), key
    assert before["image_perceptual_distance"] == pytest.approx(float(PerceptualLoss(network)(a, model(a)["image"])), rel=1e-5)
    reloaded_network = reloaded.loss["features"].loss_network
    assert reloaded_network is not network
    for saved, original in zip(reloaded_network.get_weights(), network.get_weights()):
        np.testing.assert_array_equal(saved, original)


def test_perceptual_distance_averages_over_everything_seen(network):
    a, b, c, d = (_images(seed) for seed in (10, 11, 12, 13))
    per_image = PerceptualLoss(network, reduction=None)
    first, second = _numpy(per_image(a, b)), _numpy(per_image(c, d))
    weights = np.array([0.0, 1.0, 2.0, 1.0], np.float32)
    metric = PerceptualDistance(network)
    metric.update_state(a, b)
    metric.update_state(c, d, sample_weight=weights)
    expected = (first.sum() + (weights * second).sum()) / (4 + weights.sum())
    assert float(metric.result()) == pytest.approx(expected, rel=1e-5)
    config = PerceptualDistance("random", value_range=(-1, 1), name="pd").get_config()
    assert PerceptualDistance.from_config(config).get_config() == config
    assert config["value_range"] == [-1.0, 1.0] and config["loss_network"] == "random"


def test_the_docs_example_trains_a_keras_autoencoder_with_perceptual_loss(tmp_path, fashion_mnist_dir):
    def load_fashion_mnist():  # keras.datasets' ((images, labels), (images, labels)), from the IDX stand-in
        return tuple((part.images[..., 0], part.labels) for part in (idx_split(s, fashion_mnist_dir) for s in ("train", "test")))

    path = str(tmp_path / "perceptual_autoencoder.keras")
    code = docs_example(
        "loss-network.md", "## The losses in your own model: `keras_pae.losses`",
        [("keras.datasets.fashion_mnist.load_data()", "load_fashion_mnist()"), ("epochs=10", "epochs=3"),
         ('"perceptual_autoencoder.keras"', repr(path))],
    )
    keras.utils.set_random_seed(0)
    namespace = {"load_fashion_mnist": load_fashion_mnist}
    exec(compile(code, "docs/loss-network.md", "exec"), namespace)
    autoencoder, history, images = namespace["autoencoder"], namespace["history"], namespace["images"]
    assert images.shape == (160, 64, 64, 1) and 0 <= images.min() and images.max() <= 1
    losses = history.history["loss"]
    assert len(losses) == 3 and losses[-1] < losses[0]
    # fit minimised the PS loss of the images and their reconstructions, per the loss class.
    evaluated = autoencoder.evaluate(images, images, verbose=0, return_dict=True)
    direct = PerceptualLoss("fashion_mnist")(images, autoencoder.predict(images, verbose=0))
    assert evaluated["loss"] == pytest.approx(float(direct), rel=1e-4)
    reloaded = keras.saving.load_model(path)
    assert isinstance(reloaded.loss, PerceptualLoss) and reloaded.loss.get_config()["loss_network"] == "fashion_mnist"
    assert reloaded.evaluate(images, images, verbose=0, return_dict=True)["loss"] == pytest.approx(evaluated["loss"], rel=1e-5)
    assert os.path.getsize(path) > 0
