import socket

import numpy as np
import pytest
import tensorflow_datasets as tfds

from keras_pae.perceptual.config import TrainConfig
from keras_pae.data import pipeline, registry
from keras_pae.perceptual.training import train
from tests.helpers import assert_accuracies_of_kept_embeddings


@pytest.mark.parametrize(
    "dataset, native, model_side",
    [("svhn", 32, 64), ("stl10", 96, 96)],
)
def test_parts_shapes_and_labels(dataset, native, model_side):
    config = TrainConfig(dataset=dataset, limit=5).validate()
    assert config.image_size == model_side
    with tfds.testing.mock_data(num_examples=7):
        parts = {
            "autoencoder": registry.autoencoder_data(config),
            "predictor": registry.predictor_data(config),
            "test": registry.test_data(config),
        }
    # --limit cuts every part (the mock has 7 examples in each).
    assert len(parts["autoencoder"]) == len(parts["predictor"]) == len(parts["test"]) == 5
    for data in parts.values():
        assert data.images.shape[1:] == (native, native, 3) and data.images.dtype == np.uint8
    for data in (parts["predictor"], parts["test"]):
        assert data.labels.dtype == np.int64 and data.labels.min() >= 0 and data.labels.max() <= 9
    info = registry.info(dataset)
    assert info.label_kind == "class" and info.num_outputs == 10
    batch = next(iter(pipeline.image_dataset(parts["test"].images, 7, image_size=model_side, fit=info.fit)))
    batch = batch.numpy()
    assert batch.shape == (5, model_side, model_side, 3) and batch.dtype == np.float32
    assert 0.0 <= batch.min() and batch.max() <= 1.0


def test_svhn_is_wrap_padded_into_four_equal_quadrants():
    with tfds.testing.mock_data(num_examples=3):
        images = registry.tfds_part("svhn", "test").images
    padded = next(iter(pipeline.image_dataset(images, 3, image_size=64, fit="wrap"))).numpy()
    expected = np.pad(images, ((0, 0), (0, 32), (0, 32), (0, 0)), mode="wrap") / 255.0
    np.testing.assert_allclose(padded, expected, atol=1e-6)
    for quadrant in (padded[:, :32, 32:], padded[:, 32:, :32], padded[:, 32:, 32:]):
        np.testing.assert_array_equal(quadrant, padded[:, :32, :32])


def test_offline_without_prepared_data_is_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(tfds.core.constants, "DATA_DIR", str(tmp_path), raising=False)

    def no_dns(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    with pytest.raises(ValueError) as error:
        registry.tfds_part("svhn", "test")
    message = str(error.value)
    assert "\n" not in message
    assert "svhn" in message and "ufldl.stanford.edu" in message
    assert "--data-dir with" in message and message.endswith("run the command again.")


def test_train_runs_on_svhn(tmp_path):
    config = TrainConfig(
        dataset="svhn", procedure="I-F-FP", epochs=1, limit=40, batch_size=16, z_dim=4,
        loss_weights="random", predictor_epochs=2, out=str(tmp_path / "svhn"),
    )
    with tfds.testing.mock_data(num_examples=30):
        summary = train(config, verbose=0)
    assert summary["image_shape"] == [64, 64, 3]
    assert_accuracies_of_kept_embeddings(tmp_path / "svhn", summary["predictors"])


@pytest.mark.parametrize(
    "dataset, native, channels, model_side, label_shape",
    [
        ("mnist", 28, 1, 64, ()),
        ("cifar10", 32, 3, 64, ()),
        ("omniglot", 105, 1, 112, ()),
        ("celeb_a", 96, 3, 96, (40,)),
        ("celeb_a_landmarks", 96, 3, 96, (10,)),
    ],
)
def test_other_papers_datasets_parts(dataset, native, channels, model_side, label_shape):
    config = TrainConfig(dataset=dataset, limit=4).validate()
    info = registry.info(dataset)
    assert config.image_size == model_side and info.native_size == (native, native)
    with tfds.testing.mock_data(num_examples=6):
        auto = registry.autoencoder_data(config)
        test = registry.test_data(config)
    # --limit cuts the test part too (the mock has 6 examples).
    assert len(auto) == 4 and len(test) == 4
    for data in (auto, test):
        assert data.images.shape[1:] == (native, native, channels) and data.images.dtype == np.uint8
        assert data.labels.shape[1:] == label_shape
    if info.label_kind == "class":
        assert test.labels.dtype == np.int64 and 0 <= test.labels.min() and test.labels.max() < info.num_outputs
    elif info.label_kind == "attributes":
        assert set(np.unique(test.labels)) <= {0.0, 1.0} and info.num_outputs == 40
    else:
        assert info.label_kind == "position" and info.num_outputs == 10 and info.pixels_per_unit == 96
    batch = next(iter(pipeline.image_dataset(test.images, 6, image_size=model_side, fit=info.fit))).numpy()
    assert batch.shape == (4, model_side, model_side, 3) and 0.0 <= batch.min() and batch.max() <= 1.0
    if channels == 1:  # grey images are repeated over the three channels
        np.testing.assert_array_equal(batch[..., 0], batch[..., 2])


def test_celeb_a_landmarks_follow_the_crop():
    with tfds.testing.mock_data(num_examples=3):
        data = registry.tfds_part("celeb_a_landmarks", "test")
        raw = next(iter(tfds.as_numpy(tfds.load("celeb_a", split="test[-2000:]").batch(3))))
    x = raw["landmarks"]["nose_x"] / 178
    y = (raw["landmarks"]["nose_y"] - 20) / 178  # the 178x178 crop starts 20 rows down
    np.testing.assert_allclose(data.labels[:, 4], x, rtol=1e-6)
    np.testing.assert_allclose(data.labels[:, 5], y, rtol=1e-6)
