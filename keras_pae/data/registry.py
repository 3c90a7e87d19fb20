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
    """

    name: str
    label_kind: str
    num_outputs: int


DATASETS = {
    "lunarlander": DatasetInfo("lunarlander", "position", 2),
    "fashion_mnist": DatasetInfo("fashion_mnist", "class", 10),
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


def autoencoder_data(config, progress=True):
    """The autoencoder part of `config.dataset`, cut to `config.limit`.

    Args:
        config: a validated `TrainConfig`.
        progress: show a progress bar while generating.
    """
    info(config.dataset)
    if config.dataset == "lunarlander":
        data = _lunarlander_run(config, "autoencoder", _autoencoder_rollouts(config), progress)
    else:
        data = idx_split("train", config.data_dir, config.dataset)
    return data if config.limit is None else data.take(config.limit)


def predictor_data(config, progress=True):
    """Labelled data the embedding predictors train and validate on.

    LunarLander's predictor and test runs default to as many rollouts as the
    autoencoder run uses (so `--limit` shrinks them too).
    """
    info(config.dataset)
    if config.dataset == "lunarlander":
        rollouts = config.predictor_rollouts or _autoencoder_rollouts(config)
        return _lunarlander_run(config, "predictor", rollouts, progress)
    return idx_split("train", config.data_dir, config.dataset)


def test_data(config, progress=True):
    """Labelled data the chosen predictor is tested on."""
    info(config.dataset)
    if config.dataset == "lunarlander":
        rollouts = config.test_rollouts or _autoencoder_rollouts(config)
        return _lunarlander_run(config, "test", rollouts, progress)
    return idx_split("test", config.data_dir, config.dataset)
