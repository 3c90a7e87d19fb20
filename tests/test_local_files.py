"""Local-file readers on small files written here in each dataset's format."""

import pickle

import numpy as np
import pytest
import scipy.io
from PIL import Image

from keras_pae.perceptual.config import TrainConfig
from keras_pae.data import local_files, registry
from keras_pae.data.__main__ import main as data_main
from keras_pae.perceptual.training import train
from tests.helpers import assert_accuracies_of_kept_embeddings


def _asymmetric(height, width, channels, n, seed=0):
    """Random images whose top-left pixel block is bright and bottom-right dark in every channel.

    Any flip or transpose moves the bright block, so comparing with the written
    images checks orientation as well as values.
    """
    images = np.random.default_rng(seed).integers(60, 190, (n, height, width, channels), dtype=np.uint8)
    images[:, :3, :5] = 255
    images[:, -2:, -4:] = 0
    return images


def test_svhn_mat_layout_and_label_10_is_digit_0(tmp_path):
    images = _asymmetric(32, 32, 3, 6)
    labels = np.array([10, 1, 2, 9, 10, 5], np.uint8)
    # SVHN stores X as (32, 32, 3, N) and y as (N, 1), 10 meaning the digit 0.
    for split in ("train", "test", "extra"):
        scipy.io.savemat(tmp_path / local_files.SVHN_FILES[split], {"X": np.moveaxis(images, 0, -1), "y": labels[:, None]})
    data = local_files.svhn_mat("train", str(tmp_path))
    assert data.images.dtype == np.uint8 and data.images.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(data.images, images)
    np.testing.assert_array_equal(data.labels, [0, 1, 2, 9, 0, 5])
    assert len(local_files.svhn_mat("extra", str(tmp_path), limit=4)) == 4
    # The registry reads it from --data-dir: extra feeds the autoencoder.
    config = TrainConfig(dataset="svhn", data_dir=str(tmp_path), limit=5).validate()
    assert len(registry.autoencoder_data(config)) == 5


def _write_stl10(folder, images, labels):
    folder.mkdir()
    # Each image: 3 channels of 96x96 bytes, each channel column by column.
    raw = np.ascontiguousarray(images.transpose(0, 3, 2, 1)).tobytes()
    for split in ("train", "test", "unlabeled"):
        (folder / f"{split}_X.bin").write_bytes(raw)
        if split != "unlabeled":
            (folder / f"{split}_y.bin").write_bytes(labels.astype(np.uint8).tobytes())


def test_stl10_bin_is_column_major_and_labels_start_at_1(tmp_path):
    images = _asymmetric(96, 96, 3, 4)
    _write_stl10(tmp_path / "stl10_binary", images, np.array([1, 10, 3, 7]))
    train = local_files.stl10_bin("train", str(tmp_path))
    np.testing.assert_array_equal(train.images, images)
    assert train.images.dtype == np.uint8
    np.testing.assert_array_equal(train.labels, [0, 9, 2, 6])
    # The stl10_binary folder itself works too; unlabeled has no labels; limit reads fewer.
    unlabeled = local_files.stl10_bin("unlabeled", str(tmp_path / "stl10_binary"), limit=3)
    assert unlabeled.labels is None and unlabeled.images.shape == (3, 96, 96, 3)
    np.testing.assert_array_equal(unlabeled.images, images[:3])


def test_cifar10_pickles(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    images = _asymmetric(32, 32, 3, 12)
    labels = np.arange(12) % 10
    names = [*local_files.CIFAR10_FILES["train"], "test_batch"]
    for i, name in enumerate(names):
        chunk = slice(2 * i, 2 * i + 2)
        # Rows: the red, green and blue 32x32 planes, row by row (bytes keys, as the release).
        rows = images[chunk].transpose(0, 3, 1, 2).reshape(2, -1)
        with open(folder / name, "wb") as f:
            pickle.dump({b"data": rows, b"labels": labels[chunk].tolist()}, f)
    train = local_files.cifar10_pickles("train", str(tmp_path))
    np.testing.assert_array_equal(train.images, images[:10])
    np.testing.assert_array_equal(train.labels, labels[:10])
    test = local_files.cifar10_pickles("test", str(folder))
    np.testing.assert_array_equal(test.images, images[10:])
    assert len(local_files.cifar10_pickles("train", str(tmp_path), limit=3)) == 3


def _write_silhouettes(directory, sizes=(("train", 20), ("val", 8), ("test", 6)), seed=0):
    """Silhouettes as the .mat stores them: 1 = background, columns first; returns the upright images."""
    rng = np.random.default_rng(seed)
    contents, upright = {}, {}
    for split, n in sizes:
        silhouette = rng.random((n, 28, 28)) < 0.3
        silhouette[:, :4, :10] = True  # a block at the top left: orientation
        silhouette[:, -3:, :] = False
        background = (~silhouette).astype(np.uint8)
        contents[f"{split}_data"] = background.transpose(0, 2, 1).reshape(n, 784)
        contents[f"{split}_labels"] = rng.integers(1, 102, (n, 1))
        upright[split] = background * 255
    scipy.io.savemat(directory / local_files.CALTECH101_SILHOUETTES_FILE, contents)
    return upright, contents


def test_caltech101_silhouettes_are_upright(tmp_path):
    upright, contents = _write_silhouettes(tmp_path)
    data = local_files.caltech101_silhouettes("val", str(tmp_path))
    assert data.images.shape == (8, 28, 28, 1) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[..., 0], upright["val"])
    assert set(np.unique(data.images)) == {0, 255}
    # The silhouette block is black at the top left, the bottom rows white.
    assert (data.images[:, :4, :10] == 0).all() and (data.images[:, -3:] == 255).all()
    np.testing.assert_array_equal(data.labels, contents["val_labels"][:, 0] - 1)
    config = TrainConfig(dataset="caltech101_silhouettes", data_dir=str(tmp_path)).validate()
    assert len(registry.autoencoder_data(config)) == 28  # train + val
    assert len(registry.test_data(config)) == 6


def _png(path, array):
    Image.fromarray(array).save(path)


def test_image_folder_composites_on_white_and_labels_subfolders(tmp_path):
    rgba = np.zeros((16, 12, 4), np.uint8)
    rgba[..., 0] = 200  # red where opaque
    rgba[:8, :, 3] = 255  # top half opaque, bottom transparent
    flat = tmp_path / "flat"
    flat.mkdir()
    _png(flat / "a.png", rgba)
    _png(flat / "b.png", rgba)
    data = local_files.image_folder(str(flat))
    assert data.labels is None and data.images.shape == (2, 16, 12, 3) and data.images.dtype == np.uint8
    np.testing.assert_array_equal(data.images[0, :8], np.broadcast_to([200, 0, 0], (8, 12, 3)))
    np.testing.assert_array_equal(data.images[0, 8:], np.full((8, 12, 3), 255))

    classes = tmp_path / "classes"
    for i, name in enumerate(("fire", "water")):
        (classes / name).mkdir(parents=True)
        for j in range(3):
            _png(classes / name / f"{j}.png", _asymmetric(20, 20, 3, 1, seed=3 * i + j)[0])
    (classes / "water" / "notes.txt").write_text("ignored")
    data = local_files.image_folder(str(classes), image_size=32)
    assert data.images.shape == (6, 32, 32, 3)
    np.testing.assert_array_equal(data.labels, [0, 0, 0, 1, 1, 1])
    # Resized, the bright block stays at the top left.
    assert data.images[:, :2, :2].min() > 200 and data.images[:, -1, -1].max() < 50
    # pokemon: every fifth image (sorted order) is the test part.
    config = TrainConfig(dataset="pokemon", data_dir=str(classes)).validate()
    assert config.image_size == 128
    assert len(registry.predictor_data(config)) == 5 and len(registry.test_data(config)) == 1
    assert registry.test_data(config).images.shape == (1, 128, 128, 3)


@pytest.mark.parametrize(
    "dataset, expected",
    [
        ("mnist", "train-images-idx3-ubyte.gz"),
        ("svhn", "extra_32x32.mat"),
        ("stl10", "unlabeled_X.bin"),
        ("cifar10", "data_batch_1"),
        ("caltech101_silhouettes", "caltech101_silhouettes_28_split1.mat"),
        ("pokemon", ".png"),
    ],
)
def test_missing_local_files_is_one_sentence_naming_them(tmp_path, dataset, expected):
    with pytest.raises(FileNotFoundError) as error:
        registry.load_part(dataset, "autoencoder", str(tmp_path))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(dataset) and expected in message and str(tmp_path) in message


def test_info_names_splits_sizes_and_sources(tmp_path, capsys):
    assert data_main(["svhn", "--info"]) == 0
    out = capsys.readouterr().out
    for text in ("svhn_cropped", "'extra'", "531131", "73257", "26032", "extra_32x32.mat", "64x64 (wrap)"):
        assert text in out
    _write_silhouettes(tmp_path)
    assert data_main(["caltech101_silhouettes", "--info", "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train + val" in out and "files found" in out and "TFDS" not in out
    assert data_main(["stl10", "--info", "--data-dir", str(tmp_path)]) == 0
    assert "missing stl10_binary/test_X.bin" in capsys.readouterr().out


def test_train_on_local_silhouettes(tmp_path):
    (tmp_path / "data").mkdir()
    _write_silhouettes(tmp_path / "data", sizes=(("train", 56), ("val", 16), ("test", 24)))
    config = TrainConfig(
        dataset="caltech101_silhouettes", data_dir=str(tmp_path / "data"), procedure="I-I-PW",
        epochs=1, limit=64, batch_size=16, z_dim=4, loss_weights="random", predictor_epochs=2,
        out=str(tmp_path / "run"),
    )
    summary = train(config, verbose=0)
    assert summary["image_shape"] == [64, 64, 3]
    assert summary["train_images"] + summary["validation_images"] == 64
    predictors = summary["predictors"]
    assert_accuracies_of_kept_embeddings(tmp_path / "run", predictors)
    # --limit 64 cuts the predictor part (72 images) too; the test part has fewer.
    assert predictors["test_examples"] == 24 and predictors["train_examples"] + predictors["validation_examples"] == 64
