"""The data registry: a dataset name -> its three parts and label kind.

SPEC §6: every dataset has autoencoder data (unlabelled use), predictor data
(train + validation for the embedding predictors) and test data. Light to
import (no TensorFlow).
"""

import dataclasses
import os
from typing import Optional

import numpy as np

from keras_pae.data.idx import read_idx

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Images of one part of a dataset, at their native size.

    Args:
        images: uint8 array (N, H, W, C), C = 1 or 3; pipelines convert to
            the model's size and 3 channels.
        labels: class indices (N,) or positions (N, 2), None when unlabelled.
        groups: ids of contiguous groups (LunarLander rollouts) that a
            validation split must not cut through.
    """

    images: np.ndarray
    labels: Optional[np.ndarray] = None
    groups: Optional[np.ndarray] = None

    def __len__(self):
        return len(self.images)

    def take(self, n):
        """The first n examples."""
        cut = lambda a: None if a is None else a[:n]  # noqa: E731
        return ImageData(self.images[:n], cut(self.labels), cut(self.groups))


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the rest of the package needs to know about a dataset.

    Args:
        name: registry name.
        label_kind: `"position"` (regression, error in pixels) or `"class"`.
        num_outputs: 2 for positions, the number of classes otherwise.
        image_size: side of the images the conv autoencoders see (64 + 16n).
        fit: how native images reach that size: `"resize"` or `"wrap"`.
    """

    name: str
    label_kind: str
    num_outputs: int
    image_size: int = 64
    fit: str = "resize"


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """A dataset read through tensorflow-datasets (SPEC §6 splits).

    Args:
        name: the TFDS name.
        autoencoder, predictor, test: the TFDS split of each part.
        host: the download host, checked before TFDS retries for minutes.
        files: what a user could download by hand instead.
    """

    name: str
    autoencoder: str
    predictor: str
    test: str
    host: str
    files: str


DATASETS = {
    "lunarlander": DatasetInfo("lunarlander", "position", 2),
    "fashion_mnist": DatasetInfo("fashion_mnist", "class", 10),
    # 32x32 digits wrap-padded (2x2 tiled) to 64x64, as the papers do.
    "svhn": DatasetInfo("svhn", "class", 10, image_size=64, fit="wrap"),
    "stl10": DatasetInfo("stl10", "class", 10, image_size=96),
}

TFDS_SOURCES = {
    "svhn": TfdsSource(
        "svhn_cropped", "extra", "train", "test", "ufldl.stanford.edu",
        "train_32x32.mat, test_32x32.mat, extra_32x32.mat",
    ),
    # The paper's "500" labelled training images is a typo for 5000 (SPEC §6).
    "stl10": TfdsSource(
        "stl10", "unlabelled", "train", "test", "ai.stanford.edu", "stl10_binary.tar.gz",
    ),
}


def info(name):
    """The `DatasetInfo` of `name`; a ValueError lists the valid names."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; valid datasets are {', '.join(DATASETS)}.")
    return DATASETS[name]


def _lunarlander_run(config, run, rollouts, progress):
    from keras_pae.data import lunarlander

    generated = lunarlander.generate_run(
        run,
        rollouts=rollouts,
        steps=config.steps,
        image_size=config.image_size,
        seed=config.data_seed,
        progress=progress,
    )
    if run != "autoencoder":
        generated = generated.filtered()
    return ImageData(generated.images, generated.positions, generated.rollouts)


def idx_split(split, data_dir=None, dataset="fashion_mnist"):
    """Reads one split of an MNIST-format dataset from its four IDX files.

    Args:
        split: `"train"` or `"test"`.
        data_dir: folder with the `.gz` files; None uses the Debian package's
            folder (`apt-get install dataset-fashion-mnist`).
        dataset: name used in the error message.
    """
    directory = data_dir or FASHION_MNIST_DIR
    paths = [os.path.join(directory, name) for name in IDX_FILES[split]]
    missing = [os.path.basename(p) for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"{dataset} files {', '.join(missing)} not found in {directory}; install the "
            "Debian package dataset-fashion-mnist (apt-get install dataset-fashion-mnist) "
            "or pass --data-dir with the four IDX .gz files."
        )
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match.")
    return ImageData(images[..., None], labels.astype(np.int64))


def _autoencoder_rollouts(config):
    if config.limit is None:
        return config.rollouts
    # Generate only what --limit uses: a quick run must not first generate the
    # full collection.
    return min(config.rollouts, -(-config.limit // config.steps))


def _reachable(host, port=80):
    import socket

    try:
        socket.getaddrinfo(host, port)
        return True
    except OSError:
        return False


def tfds_part(dataset, part, limit=None):
    """Loads one part of a TFDS-backed dataset into memory as uint8 + labels.

    Offline with nothing prepared, fails at once with one sentence instead of
    letting TFDS retry the download for minutes.

    Args:
        dataset: registry name (`"svhn"`, `"stl10"`).
        part: `"autoencoder"`, `"predictor"` or `"test"`.
        limit: read only the first `limit` examples.
    """
    import tensorflow_datasets as tfds

    source = TFDS_SOURCES[dataset]
    split = getattr(source, part)
    try:
        ds = tfds.load(source.name, split=split, as_supervised=True, download=False)
    except Exception:  # not prepared yet (AssertionError, DatasetNotFoundError, ...)
        if not _reachable(source.host):
            raise ValueError(
                f"{dataset}: tensorflow-datasets has no prepared '{source.name}' and cannot "
                f"reach {source.host} to download it; connect to the internet (or prepare it "
                f"with `tfds build {source.name}` from {source.files} placed in "
                "~/tensorflow_datasets/downloads/manual) and retry: "
                f"python train.py --dataset {dataset}"
            ) from None
        ds = tfds.load(source.name, split=split, as_supervised=True, download=True)
    if limit is not None:
        ds = ds.take(limit)
    images, labels = [], []
    for x, y in tfds.as_numpy(ds.batch(4096)):
        images.append(x)
        labels.append(y)
    return ImageData(np.concatenate(images), np.concatenate(labels).astype(np.int64))


# Which IDX split feeds each part (MNIST-format sets have no unlabelled split).
_IDX_SPLITS = {"autoencoder": "train", "predictor": "train", "test": "test"}


def _part(config, part, progress, limit=None):
    info(config.dataset)
    if config.dataset == "lunarlander":
        # The predictor and test runs default to as many rollouts as the
        # autoencoder run uses, so --limit shrinks them too.
        chosen = {"predictor": config.predictor_rollouts, "test": config.test_rollouts}.get(part)
        return _lunarlander_run(config, part, chosen or _autoencoder_rollouts(config), progress)
    if config.dataset in TFDS_SOURCES:
        return tfds_part(config.dataset, part, limit)
    return idx_split(_IDX_SPLITS[part], config.data_dir, config.dataset)


def autoencoder_data(config, progress=True):
    """The autoencoder part of `config.dataset`, cut to `config.limit`.

    Args:
        config: a validated `TrainConfig`.
        progress: show a progress bar while generating.
    """
    data = _part(config, "autoencoder", progress, config.limit)
    return data if config.limit is None else data.take(config.limit)


def predictor_data(config, progress=True):
    """Labelled data the embedding predictors train and validate on."""
    return _part(config, "predictor", progress)


def test_data(config, progress=True):
    """Labelled data the chosen predictor is tested on."""
    return _part(config, "test", progress)
