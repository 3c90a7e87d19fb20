import os

# Before TensorFlow or pygame is imported by any test module.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
# Small numpy products (the bottleneck probes) crawl when OpenBLAS threads spin.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from keras_pae.data.idx import write_idx  # noqa: E402
from keras_pae.data.local_files import IDX_FILES  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory):
    """One LunarLander cache for the session, shared with subprocesses."""
    path = tmp_path_factory.mktemp("keras_pae_cache")
    os.environ["KERAS_PAE_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def fashion_mnist_dir(tmp_path_factory):
    """A small Fashion-MNIST stand-in in IDX .gz files: 160 train and 80 test images.

    Each of the 10 classes is its own blurred pattern plus noise, so there is
    something to learn; tests pass it as --data-dir instead of reading
    Debian's dataset-fashion-mnist, which a fresh machine does not have.
    """
    directory = tmp_path_factory.mktemp("fashion_mnist")
    rng = np.random.default_rng(0)
    patterns = rng.random((10, 7, 7)).repeat(4, axis=1).repeat(4, axis=2)  # 28x28, blocky
    for split, n in (("train", 160), ("test", 80)):
        labels = np.arange(n) % 10
        images = 0.7 * patterns[labels] + 0.3 * rng.random((n, 28, 28))
        images_file, labels_file = IDX_FILES[split]
        write_idx(directory / images_file, np.round(255 * images).astype(np.uint8))
        write_idx(directory / labels_file, labels.astype(np.uint8))
    return str(directory)
