"""Readers for the files a user already has, chosen with `--data-dir`.

Every reader returns `ImageData` with uint8 images (N, H, W, C) at their
native size, upright, and labels as 0-based class indices. Light to import
(no TensorFlow): numpy, and scipy / Pillow only inside the readers that need them.
"""

import os
import pickle

import numpy as np

from keras_pae.data.idx import read_idx
from keras_pae.data.images import ImageData

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
STL10_FOLDER = "stl10_binary"
STL10_SIDE = 96
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_FILES = {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)}
CALTECH101_SILHOUETTES_FILE = "caltech101_silhouettes_28_split1.mat"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def _require(paths, dataset, expected):
    """Raises one FileNotFoundError sentence naming the missing files and what is expected."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        folder = os.path.dirname(missing[0])
        names = ", ".join(os.path.basename(p) for p in missing)
        raise FileNotFoundError(f"{dataset}: {names} not found in {folder}; --data-dir must hold {expected}.")


def _subfolder(directory, name):
    """`directory/name` when the archive was unpacked there, else `directory` itself."""
    inner = os.path.join(directory, name)
    return inner if os.path.isdir(inner) else directory


def idx_split(split, directory, dataset="fashion_mnist"):
    """One split of an MNIST-format dataset (MNIST, Fashion-MNIST) from IDX `.gz` files.

    Args:
        split: `"train"` or `"test"`.
        directory: folder holding the four `*-ubyte.gz` files.
        dataset: name used in error messages.
    """
    paths = [os.path.join(directory, name) for name in IDX_FILES[split]]
    _require(paths, dataset, "the four IDX files " + ", ".join(sum(IDX_FILES.values(), ())))
    images, labels = (read_idx(p) for p in paths)
    if images.ndim != 3 or len(images) != len(labels):
        raise ValueError(f"{directory}: {split} images {images.shape} and labels {labels.shape} do not match.")
    return ImageData(images[..., None], labels.astype(np.int64))


def svhn_mat(split, directory, limit=None):
    """One split of SVHN's cropped digits from `{train,test,extra}_32x32.mat`.

    The files store `X` as (32, 32, 3, N) and `y` as (N, 1) with 10 for the
    digit 0; labels come back as the digit.

    Args:
        split: `"train"`, `"test"` or `"extra"`.
        directory: folder holding the `.mat` files.
        limit: keep only the first `limit` images.
    """
    import scipy.io

    path = os.path.join(directory, SVHN_FILES[split])
    _require([path], "svhn", ", ".join(SVHN_FILES.values()))
    mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    images, labels = mat["X"], mat["y"].reshape(-1)
    if images.ndim != 4 or images.shape[:3] != (32, 32, 3) or images.shape[3] != len(labels):
        raise ValueError(f"{path}: expected X of shape (32, 32, 3, N) and N labels; got {images.shape}, {labels.shape}.")
    n = len(labels) if limit is None else min(limit, len(labels))
    images = np.ascontiguousarray(np.moveaxis(images[..., :n], -1, 0), dtype=np.uint8)
    return ImageData(images, (labels[:n] % 10).astype(np.int64))


def stl10_bin(split, directory, limit=None):
    """One split of STL-10 from the binary release (`stl10_binary/*_X.bin`, `*_y.bin`).

    Each image is 3 x 96 x 96 bytes, channel by channel, each channel stored
    column by column (MATLAB order); labels 1-10 become 0-9.

    Args:
        split: `"train"`, `"test"` or `"unlabeled"`.
        directory: the `stl10_binary` folder or its parent.
        limit: read only the first `limit` images.
    """
    directory = _subfolder(directory, STL10_FOLDER)
    image_path = os.path.join(directory, f"{split}_X.bin")
    label_path = None if split == "unlabeled" else os.path.join(directory, f"{split}_y.bin")
    _require(
        [p for p in (image_path, label_path) if p], "stl10",
        f"{STL10_FOLDER}/ with train_X.bin, train_y.bin, test_X.bin, test_y.bin, unlabeled_X.bin",
    )
    size = 3 * STL10_SIDE * STL10_SIDE
    count = os.path.getsize(image_path) // size
    if os.path.getsize(image_path) % size:
        raise ValueError(f"{image_path}: {os.path.getsize(image_path)} bytes is not a whole number of 3x96x96 images.")
    count = count if limit is None else min(limit, count)
    # A memory map reads only the `count` images used (unlabeled_X.bin is 2.7 GB).
    raw = np.memmap(image_path, np.uint8, mode="r", shape=(count, 3, STL10_SIDE, STL10_SIDE))
    images = np.ascontiguousarray(raw.transpose(0, 3, 2, 1))  # (N, C, W, H) -> (N, H, W, C)
    labels = None
    if label_path:
        labels = np.fromfile(label_path, np.uint8, count=count).astype(np.int64) - 1
        if len(labels) != count or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
            raise ValueError(f"{label_path}: expected {count} labels in 1-10.")
    return ImageData(images, labels)


def cifar10_pickles(split, directory, limit=None):
    """One split of CIFAR-10 from the python release (`cifar-10-batches-py/`).

    Args:
        split: `"train"` (data_batch_1-5) or `"test"` (test_batch).
        directory: the `cifar-10-batches-py` folder or its parent.
        limit: keep only the first `limit` images.
    """
    directory = _subfolder(directory, CIFAR10_FOLDER)
    paths = [os.path.join(directory, name) for name in CIFAR10_FILES[split]]
    _require(paths, "cifar10", f"{CIFAR10_FOLDER}/ with data_batch_1 ... data_batch_5 and test_batch")
    images, labels = [], []
    for path in paths:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
        # Rows are 3072 bytes: the red, green and blue 32x32 planes, row by row.
        images.append(np.asarray(batch[b"data"], np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        labels.append(np.asarray(batch[b"labels"], np.int64))
        if limit is not None and sum(map(len, labels)) >= limit:
            break
    data = ImageData(np.ascontiguousarray(np.concatenate(images)), np.concatenate(labels))
    return data if limit is None else data.take(limit)


def caltech101_silhouettes(split, directory):
    """One split of Caltech-101 Silhouettes (28x28) from `caltech101_silhouettes_28_split1.mat`.

    Rows of `*_data` are 784 pixels stored column by column (MATLAB order, as
    the VampPrior and IWAE loaders read them), 1 for the background and 0 for
    the silhouette; they come back upright as black silhouettes on white
    (0 / 255). Labels 1-101 become 0-100.

    Args:
        split: `"train"`, `"val"` or `"test"`.
        directory: folder holding the `.mat` file.
    """
    import scipy.io

    path = os.path.join(directory, CALTECH101_SILHOUETTES_FILE)
    _require([path], "caltech101_silhouettes", CALTECH101_SILHOUETTES_FILE)
    mat = scipy.io.loadmat(path, variable_names=(f"{split}_data", f"{split}_labels"))
    pixels, labels = mat[f"{split}_data"], mat[f"{split}_labels"].reshape(-1)
    if pixels.ndim != 2 or pixels.shape[1] != 28 * 28 or len(pixels) != len(labels):
        raise ValueError(f"{path}: expected {split}_data of shape (N, 784) and N labels; got {pixels.shape}, {labels.shape}.")
    images = pixels.reshape(-1, 28, 28).transpose(0, 2, 1)
    images = (np.clip(images, 0, 1) * 255).astype(np.uint8)[..., None]
    return ImageData(np.ascontiguousarray(images), labels.astype(np.int64) - 1)


def image_folder(directory, image_size=None, limit=None, dataset="image folder"):
    """Every PNG / JPEG under `directory`, e.g. the CAE paper's Pokemon set.

    Transparent pixels are composited on white; images are RGB. Files directly
    in `directory` are unlabelled; with class subfolders the label is the
    subfolder's index in sorted order. Files are read in sorted order.

    Args:
        directory: the folder.
        image_size: resize every image to this square side (bicubic); None
            requires all images to have the same size.
        limit: read only the first `limit` images.
        dataset: name used in error messages.
    """
    from PIL import Image

    files = image_files(directory, dataset=dataset)[:limit]
    images = []
    for path, _ in files:
        with Image.open(path) as image:
            image = image.convert("RGBA")
            white = Image.new("RGBA", image.size, (255, 255, 255, 255))
            image = Image.alpha_composite(white, image).convert("RGB")
            if image_size is not None and image.size != (image_size, image_size):
                image = image.resize((image_size, image_size), Image.BICUBIC)
            images.append(np.asarray(image, np.uint8))
    shapes = sorted({a.shape for a in images})
    if len(shapes) > 1:
        raise ValueError(f"{directory}: images have different sizes {shapes[:3]}; pass an image size to resize them.")
    labels = None if files[0][1] is None else np.array([label for _, label in files], np.int64)
    return ImageData(np.stack(images), labels)


def image_files(directory, required=True, dataset="image folder"):
    """(path, label) of every image of an image folder, sorted; label None without class subfolders.

    Args:
        directory: the folder.
        required: raise FileNotFoundError when it holds no images.
        dataset: name used in error messages.
    """
    classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and _images_in(e.path))
    if classes:
        files = [(p, label) for label, name in enumerate(classes) for p in _images_in(os.path.join(directory, name))]
    else:
        files = [(p, None) for p in _images_in(directory)]
    if required and not files:
        raise FileNotFoundError(
            f"{dataset}: {directory} holds no {'/'.join(IMAGE_SUFFIXES)} images; --data-dir must be a folder of "
            "images, optionally in one subfolder per class."
        )
    return files


def _images_in(directory):
    return sorted(
        os.path.join(directory, name) for name in os.listdir(directory)
        if name.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(directory, name))
    )

