import os

import numpy as np
import pytest

from keras_pae.perceptual.config import TrainConfig
from keras_pae.data import lunarlander, registry
from keras_pae.data.idx import read_idx, write_idx

REAL_FASHION_MNIST = os.path.isfile(os.path.join(registry.FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz"))


def _write_fake_fashion_mnist(directory, n_train=12, n_test=5):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        images, labels = registry.IDX_FILES[split]
        write_idx(directory / images, rng.integers(0, 256, (n, 28, 28)))
        write_idx(directory / labels, rng.integers(0, 10, n))


def test_idx_round_trip_and_corruption(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte.gz", array)
    np.testing.assert_array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), array)
    raw = (tmp_path / "a-idx3-ubyte.gz").read_bytes()
    import gzip

    truncated = gzip.compress(gzip.decompress(raw)[:-5])
    (tmp_path / "b-idx3-ubyte.gz").write_bytes(truncated)
    with pytest.raises(ValueError, match="truncated"):
        read_idx(tmp_path / "b-idx3-ubyte.gz")
    (tmp_path / "c.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="c.gz"):
        read_idx(tmp_path / "c.gz")


def test_local_idx_folder_parts(tmp_path):
    _write_fake_fashion_mnist(tmp_path)
    config = TrainConfig(dataset="fashion_mnist", data_dir=str(tmp_path), limit=7).validate()
    auto = registry.autoencoder_data(config)
    assert auto.images.shape == (7, 28, 28, 1) and auto.images.dtype == np.uint8
    test = registry.test_data(config)
    assert test.images.shape == (5, 28, 28, 1) and test.labels.shape == (5,)
    assert registry.info("fashion_mnist").label_kind == "class"


def test_limit_cuts_every_part(tmp_path):
    _write_fake_fashion_mnist(tmp_path)
    config = TrainConfig(dataset="fashion_mnist", data_dir=str(tmp_path), limit=3).validate()
    full = registry.load_part("fashion_mnist", "predictor", str(tmp_path))
    for part in (registry.autoencoder_data, registry.predictor_data, registry.test_data):
        assert len(part(config)) == 3
    np.testing.assert_array_equal(registry.predictor_data(config).images, full.images[:3])


def test_missing_files_name_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        registry.idx_split("train", str(tmp_path))
    message = str(error.value)
    assert "dataset-fashion-mnist" in message and "--data-dir" in message and "\n" not in message


def test_lunarlander_parts_follow_limit():
    config = TrainConfig(limit=50, steps=20, rollouts=700).validate()
    auto = registry.autoencoder_data(config, progress=False)
    predictor = registry.predictor_data(config, progress=False)
    assert len(auto) == 50 and set(auto.groups) == {0, 1, 2}
    # The predictor run is as long as the autoencoder run (3 rollouts of 20 steps), filtered on-screen.
    raw = lunarlander.generate_run("predictor", rollouts=3, steps=20, progress=False)
    x, y = raw.positions.T
    kept = (np.abs(x) <= 1) & (y >= -0.5) & (y <= 1.5)
    assert len(raw) == 60 and len(predictor) == kept.sum() > 0
    np.testing.assert_array_equal(predictor.labels, raw.positions[kept])
    np.testing.assert_array_equal(predictor.images, raw.images[kept])


@pytest.mark.skipif(not REAL_FASHION_MNIST, reason="needs Debian's dataset-fashion-mnist (.ci/run installs it)")
def test_real_fashion_mnist():
    train = registry.idx_split("train")
    test = registry.idx_split("test")
    assert train.images.shape == (60000, 28, 28, 1) and test.images.shape == (10000, 28, 28, 1)
    assert sorted(np.unique(train.labels)) == list(range(10))
    assert sorted(np.unique(test.labels)) == list(range(10))
    assert train.images.max() == 255 and train.images.min() == 0
