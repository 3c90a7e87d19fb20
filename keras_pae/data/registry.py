"""The data registry: a dataset name -> its three parts, label kind and sources.

Every dataset has autoencoder data (unlabelled use),
predictor data (train + validation for the embedding predictors) and test
data. Each part comes from local files when `--data-dir` is given (or, for
Fashion-MNIST, Debian's package folder exists), else from tensorflow-datasets.
Parts are returned at their native size; `DatasetInfo` says how the conv
autoencoders' pipeline fits them. Light to import (no TensorFlow).
"""

import dataclasses
import logging
import os
from typing import Callable, Optional

import numpy as np

from keras_pae.data import local_files, lunarlander
from keras_pae.data.images import ImageData  # noqa: F401  (re-exported)
from keras_pae.data.local_files import IDX_FILES  # noqa: F401  (re-exported)

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
PARTS = ("autoencoder", "predictor", "test")
LABEL_KINDS = ("class", "position", "attributes")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the rest of the package needs to know about a dataset.

    Args:
        name: registry name.
        label_kind: `"class"` (index; accuracy), `"position"` (coordinates
            in pairs; mean distance in pixels) or `"attributes"` (k binary
            labels; mean per-attribute accuracy).
        num_outputs: predictor outputs: classes, coordinates or attributes;
            None counts the classes found in the labels (image folders).
        image_size: side of the images the conv autoencoders see (64 + 16n).
        fit: how native images reach that size: `"resize"` or `"wrap"`.
        native_size: (height, width) of the images the parts hold, the size
            the 28/32-px models of the other papers take.
        pixels_per_unit: for positions, pixels of the model image per label unit.
    """

    name: str
    label_kind: str
    num_outputs: Optional[int]
    image_size: int = 64
    fit: str = "resize"
    native_size: tuple = (64, 64)
    pixels_per_unit: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class TfdsSource:
    """A dataset read through tensorflow-datasets.

    Args:
        name: the TFDS name.
        autoencoder, predictor, test: the TFDS split of each part.
        host: the download host, checked before TFDS retries for minutes.
        label: how an example's features become the label: a feature name, or
            a function of the features dict (numpy-side, batched).
        prepare: optional function on a batch of uint8 images (TensorFlow)
            applied while reading, e.g. CelebA's crop.
    """

    name: str
    autoencoder: str
    predictor: str
    test: str
    host: str
    label: object = "label"
    prepare: Optional[Callable] = None

    def split(self, part):
        return getattr(self, part)


@dataclasses.dataclass(frozen=True)
class LocalSource:
    """A dataset read from files in `--data-dir`.

    Args:
        files: what `--data-dir` must hold, for messages.
        parts: part -> `LocalPart`.
        default_dir: a folder used without `--data-dir` when it exists.
    """

    files: str
    parts: dict
    default_dir: Optional[str] = None

    def read(self, part, directory, limit=None):
        return self.parts[part].read(directory, limit)

    def missing(self, part, directory):
        """The files of `part` that `directory` lacks (archive subfolders allowed)."""
        return [
            name for name in self.parts[part].files
            if not any(os.path.isfile(os.path.join(directory, *p)) for p in (name.split("/"), name.split("/")[1:]))
        ]


@dataclasses.dataclass(frozen=True)
class LocalPart:
    """One part read from local files.

    Args:
        description: where the part comes from, for `--info`.
        files: the files it needs, relative to `--data-dir`; a leading
            archive folder (`stl10_binary/`) may also be omitted.
        read: reader(directory, limit) -> ImageData.
    """

    description: str
    files: tuple
    read: Callable


@dataclasses.dataclass(frozen=True)
class Dataset:
    """One registry entry: what it is, where it comes from, how big its parts are.

    Args:
        info: the `DatasetInfo`.
        tfds: the TFDS source, if any.
        local: the local-file source, if any.
        sizes: images in the autoencoder, predictor and test parts in the
            papers' setting (for `--info`).
    """

    info: DatasetInfo
    tfds: Optional[TfdsSource] = None
    local: Optional[LocalSource] = None
    sizes: tuple = (None, None, None)


def _idx(dataset, split):
    files = local_files.IDX_FILES[split]
    return LocalPart(f"{files[0]}, {files[1]}", files, lambda d, limit: local_files.idx_split(split, d, dataset))


def _idx_source(dataset, default_dir=None):
    files = "the four IDX files " + ", ".join(sum(local_files.IDX_FILES.values(), ()))
    parts = {"autoencoder": _idx(dataset, "train"), "predictor": _idx(dataset, "train"), "test": _idx(dataset, "test")}
    return LocalSource(files, parts, default_dir)


def _svhn(split):
    name = local_files.SVHN_FILES[split]
    return LocalPart(name, (name,), lambda d, limit: local_files.svhn_mat(split, d, limit))


def _stl10(split):
    files = tuple(f"stl10_binary/{split}_{kind}.bin" for kind in ("X", "y")[: 1 if split == "unlabeled" else 2])
    return LocalPart(", ".join(files), files, lambda d, limit: local_files.stl10_bin(split, d, limit))


def _cifar10(split):
    files = tuple(f"{local_files.CIFAR10_FOLDER}/{name}" for name in local_files.CIFAR10_FILES[split])
    description = f"{local_files.CIFAR10_FOLDER}/" + ("data_batch_1-5" if split == "train" else "test_batch")
    return LocalPart(description, files, lambda d, limit: local_files.cifar10_pickles(split, d, limit))


def _silhouettes(*splits):
    def read(directory, limit):
        return ImageData.concatenate([local_files.caltech101_silhouettes(s, directory) for s in splits])

    name = local_files.CALTECH101_SILHOUETTES_FILE
    return LocalPart(f"{name} {' + '.join(splits)}", (name,), read)


POKEMON_SIDE = 128


def _folder(test):
    # Every fifth image (in sorted order) is held out for testing, so class
    # subfolders are spread over both parts.
    def read(directory, limit):
        data = local_files.image_folder(directory, image_size=POKEMON_SIDE, dataset="pokemon")
        held_out = np.arange(len(data)) % 5 == 4
        return data.select(held_out if test else ~held_out)

    return LocalPart("every fifth image" if test else "the other images", (), read)


# CelebA: the aligned 178x218 faces, centre-cropped to 178x178 and resized to
# 96x96 as in the CAE bottleneck paper; 5 landmarks (x, y) as fractions of the side.
CELEB_A_SIDE = 96
_CELEB_A_CROP = (20, 0, 178, 178)  # top, left, height, width in the 218x178 image
CELEB_A_LANDMARKS = (
    "lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
    "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y",
)


def _celeb_a_images(images):
    import tensorflow as tf

    top, left, height, width = _CELEB_A_CROP
    crop = tf.image.crop_to_bounding_box(images, top, left, height, width)
    resized = tf.image.resize(crop, (CELEB_A_SIDE, CELEB_A_SIDE), antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def _celeb_a_attributes(features):
    attributes = features["attributes"]
    return np.stack([attributes[name] for name in sorted(attributes)], axis=-1).astype(np.float32)


def _celeb_a_landmarks(features):
    top, left, height, width = _CELEB_A_CROP
    landmarks = features["landmarks"]
    columns = [
        (landmarks[name] - (left if name.endswith("_x") else top)) / (width if name.endswith("_x") else height)
        for name in CELEB_A_LANDMARKS
    ]
    return np.stack(columns, axis=-1).astype(np.float32)


def _celeb_a(label):
    # The CAE bottleneck paper: the first 10 000 images and the last 2 000.
    return TfdsSource(
        "celeb_a", "train[:10000]", "train[:10000]", "test[-2000:]", "drive.google.com",
        label=label, prepare=_celeb_a_images,
    )


def _first_channel(images):
    # Omniglot's three channels are equal: keep one (a third of the memory).
    return images[..., :1]


_GREY_28 = (28, 28)
_OMNIGLOT_SIDE = 105

REGISTRY = {
    "lunarlander": Dataset(DatasetInfo("lunarlander", "position", 2, pixels_per_unit=lunarlander.PIXELS_PER_UNIT)),
    "mnist": Dataset(
        DatasetInfo("mnist", "class", 10, native_size=_GREY_28),
        TfdsSource("mnist", "train", "train", "test", "storage.googleapis.com"),
        _idx_source("mnist"),
        (60000, 60000, 10000),
    ),
    "fashion_mnist": Dataset(
        DatasetInfo("fashion_mnist", "class", 10, native_size=_GREY_28),
        TfdsSource("fashion_mnist", "train", "train", "test", "fashion-mnist.s3-website.eu-central-1.amazonaws.com"),
        _idx_source("fashion_mnist", FASHION_MNIST_DIR),
        (60000, 60000, 10000),
    ),
    # 32x32 digits tiled 2x2 into 64x64, as the perceptual-loss paper does (Sec. V).
    "svhn": Dataset(
        DatasetInfo("svhn", "class", 10, image_size=64, fit="wrap", native_size=(32, 32)),
        TfdsSource("svhn_cropped", "extra", "train", "test", "ufldl.stanford.edu"),
        LocalSource(", ".join(local_files.SVHN_FILES.values()), {
            "autoencoder": _svhn("extra"), "predictor": _svhn("train"), "test": _svhn("test"),
        }),
        (531131, 73257, 26032),
    ),
    # The papers' "500" labelled training images is a typo for 5000 (the bottleneck paper, Sec. 2.3.3, has 5000).
    "stl10": Dataset(
        DatasetInfo("stl10", "class", 10, image_size=96, native_size=(96, 96)),
        TfdsSource("stl10", "unlabelled", "train", "test", "ai.stanford.edu"),
        LocalSource("stl10_binary/ (from stl10_binary.tar.gz) with unlabeled_X.bin, train_X.bin, train_y.bin, test_X.bin, test_y.bin", {
            "autoencoder": _stl10("unlabeled"), "predictor": _stl10("train"), "test": _stl10("test"),
        }),
        (100000, 5000, 8000),
    ),
    "cifar10": Dataset(
        DatasetInfo("cifar10", "class", 10, native_size=(32, 32)),
        TfdsSource("cifar10", "train", "train", "test", "www.cs.toronto.edu"),
        LocalSource("cifar-10-batches-py/ (from cifar-10-python.tar.gz) with data_batch_1 ... data_batch_5, test_batch", {
            "autoencoder": _cifar10("train"), "predictor": _cifar10("train"), "test": _cifar10("test"),
        }),
        (50000, 50000, 10000),
    ),
    # TFDS's test split holds other alphabets than train, so both labelled
    # parts are cut from train; the label is the alphabet (50 in all, 30 in train).
    "omniglot": Dataset(
        DatasetInfo("omniglot", "class", 50, image_size=112, native_size=(_OMNIGLOT_SIDE, _OMNIGLOT_SIDE)),
        TfdsSource(
            "omniglot", "train[:80%]", "train[:80%]", "train[80%:]", "github.com", label="alphabet",
            prepare=_first_channel,
        ),
        None,
        (15424, 15424, 3856),
    ),
    "celeb_a": Dataset(
        DatasetInfo("celeb_a", "attributes", 40, image_size=CELEB_A_SIDE, native_size=(CELEB_A_SIDE, CELEB_A_SIDE)),
        _celeb_a(_celeb_a_attributes), None, (10000, 10000, 2000),
    ),
    "celeb_a_landmarks": Dataset(
        DatasetInfo(
            "celeb_a_landmarks", "position", 10, image_size=CELEB_A_SIDE,
            native_size=(CELEB_A_SIDE, CELEB_A_SIDE), pixels_per_unit=float(CELEB_A_SIDE),
        ),
        _celeb_a(_celeb_a_landmarks), None, (10000, 10000, 2000),
    ),
    "caltech101_silhouettes": Dataset(
        DatasetInfo("caltech101_silhouettes", "class", 101, native_size=_GREY_28),
        None,
        LocalSource(local_files.CALTECH101_SILHOUETTES_FILE, {
            "autoencoder": _silhouettes("train", "val"), "predictor": _silhouettes("train", "val"),
            "test": _silhouettes("test"),
        }),
        (6364, 6364, 2307),
    ),
    "pokemon": Dataset(
        DatasetInfo("pokemon", "class", None, image_size=POKEMON_SIDE, native_size=(POKEMON_SIDE, POKEMON_SIDE)),
        None,
        LocalSource(
            "a folder of .png/.jpg images (optionally one subfolder per class)",
            {"autoencoder": _folder(False), "predictor": _folder(False), "test": _folder(True)},
        ),
    ),
}

DATASETS = {name: entry.info for name, entry in REGISTRY.items()}
# Kept for callers that only need the TFDS side.
TFDS_SOURCES = {name: entry.tfds for name, entry in REGISTRY.items() if entry.tfds}


def info(name):
    """The `DatasetInfo` of `name`; a ValueError lists the valid names."""
    if name not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}; valid datasets are {', '.join(DATASETS)}.")
    return DATASETS[name]


@dataclasses.dataclass
class DataConfig:
    """Which data `autoencoder_data`, `predictor_data` and `test_data` read.

    A paper's run config (e.g. `TrainConfig`) has these fields too and can be
    passed instead; the defaults are its.

    Args:
        dataset: a registry name (see `DATASETS`).
        limit: use only the first `limit` images of each part (LunarLander:
            the rollouts `limit` autoencoder frames need, in each run).
        data_dir: folder with the dataset's local files; None uses
            tensorflow-datasets (or Debian's Fashion-MNIST folder).
        image_size: LunarLander: side of the rendered frames (None: the generator's).
        data_seed: LunarLander: seed of the generated collection.
        rollouts: LunarLander rollouts of the autoencoder run.
        predictor_rollouts, test_rollouts: LunarLander rollouts of the
            predictor and test runs (None: as many as the autoencoder run uses).
        steps: LunarLander steps per rollout.
        reset_on_termination: LunarLander: start a new episode when one ends.
    """

    dataset: str
    limit: Optional[int] = None
    data_dir: Optional[str] = None
    image_size: Optional[int] = None
    data_seed: int = 0
    rollouts: int = 700
    predictor_rollouts: Optional[int] = None
    test_rollouts: Optional[int] = None
    steps: int = 150
    reset_on_termination: bool = False


def _lunarlander_run(config, run, rollouts, progress):
    generated = lunarlander.generate_run(
        run,
        rollouts=rollouts,
        steps=config.steps,
        image_size=config.image_size,
        seed=config.data_seed,
        progress=progress,
        reset_on_termination=config.reset_on_termination,
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
    try:
        return local_files.idx_split(split, data_dir or FASHION_MNIST_DIR, dataset)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"{str(error)[:-1]} (for fashion_mnist, Debian's package puts them in {FASHION_MNIST_DIR}: "
            "apt-get install dataset-fashion-mnist)."
        ) from None


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


def _retry_command(dataset):
    # Command-agnostic: train.py, the bottleneck study and the adversarial VAE all load through here.
    entry = REGISTRY[dataset]
    if entry.local:
        return f"connect to the internet or pass --data-dir with {entry.local.files}, then run the command again."
    return "connect to the internet and run the command again."


def tfds_part(dataset, part, limit=None):
    """Loads one part of a TFDS-backed dataset into memory as uint8 + labels.

    Offline with nothing prepared, fails at once with one sentence instead of
    letting TFDS retry the download for minutes.

    Args:
        dataset: registry name with a TFDS source (`"svhn"`, `"celeb_a"`, ...).
        part: `"autoencoder"`, `"predictor"` or `"test"`.
        limit: read only the first `limit` examples.
    """
    import tensorflow_datasets as tfds

    source = TFDS_SOURCES[dataset]
    split = source.split(part)
    absl_logger = logging.getLogger("absl")
    level = absl_logger.level
    # Probing an unprepared dataset logs "Variant folder ... has no
    # dataset_info.json"; the sentence below says what matters.
    absl_logger.setLevel(logging.ERROR)
    try:
        ds = tfds.load(source.name, split=split, download=False)
    except Exception:  # not prepared yet (AssertionError, DatasetNotFoundError, ...)
        if not _reachable(source.host):
            raise ValueError(
                f"{dataset} needs the network: tensorflow-datasets has not prepared "
                f"'{source.name}' and cannot reach {source.host} to download it; "
                f"{_retry_command(dataset)}"
            ) from None
        ds = tfds.load(source.name, split=split, download=True)
    finally:
        absl_logger.setLevel(level)
    if limit is not None:
        ds = ds.take(limit)
    label = source.label

    def image_and_label(features):
        images = features["image"] if source.prepare is None else source.prepare(features["image"])
        return images, features if callable(label) else features[label]

    ds = ds.batch(1024).map(image_and_label)
    images, labels = [], []
    for x, features in tfds.as_numpy(ds):
        images.append(x)
        labels.append(label(features) if callable(label) else np.asarray(features, np.int64))
    if not images:
        raise ValueError(f"{dataset}: TFDS split {split!r} of '{source.name}' is empty.")
    return ImageData(np.concatenate(images), np.concatenate(labels))


def local_directory(dataset, data_dir=None):
    """The folder a dataset's local files are read from, or None to use TFDS."""
    local = REGISTRY[dataset].local
    if data_dir is not None:
        return data_dir
    if local and local.default_dir and os.path.isdir(local.default_dir):
        return local.default_dir
    return None


def load_part(dataset, part, data_dir=None, limit=None):
    """One part of a dataset other than LunarLander, from local files or TFDS.

    Args:
        dataset: registry name.
        part: `"autoencoder"`, `"predictor"` or `"test"`.
        data_dir: folder with the dataset's local files; None reads Debian's
            Fashion-MNIST folder when present, else TFDS.
        limit: read at most the first `limit` examples (the readers that can
            stop early do).
    """
    entry = REGISTRY[dataset]
    directory = local_directory(dataset, data_dir)
    if directory is not None:
        if entry.local is None:
            raise ValueError(
                f"{dataset} has no local-file reader; drop --data-dir to read it through "
                f"tensorflow-datasets ('{entry.tfds.name}')."
            )
        data = entry.local.read(part, directory, limit)
    elif entry.tfds is not None:
        data = tfds_part(dataset, part, limit)
    else:
        raise FileNotFoundError(
            f"{dataset} is read from local files only: pass --data-dir with {entry.local.files}, "
            f"e.g. python train.py --dataset {dataset} --data-dir DIR"
        )
    return data if limit is None else data.take(limit)


def _part(config, part, progress, limit=None):
    info(config.dataset)
    if config.dataset == "lunarlander":
        # The predictor and test runs default to as many rollouts as the
        # autoencoder run uses, so --limit shrinks them too.
        chosen = {"predictor": config.predictor_rollouts, "test": config.test_rollouts}.get(part)
        return _lunarlander_run(config, part, chosen or _autoencoder_rollouts(config), progress)
    return load_part(config.dataset, part, config.data_dir, limit)


def autoencoder_data(config, progress=True):
    """The autoencoder part of `config.dataset`, cut to `config.limit`.

    Args:
        config: a `DataConfig`, or a validated run config with its fields.
        progress: show a progress bar while generating.
    """
    data = _part(config, "autoencoder", progress, config.limit)
    return data if config.limit is None else data.take(config.limit)


def predictor_data(config, progress=True):
    """Labelled data the embedding predictors train and validate on, cut to `config.limit`.

    A quick run (`--limit`) is quick throughout: the predictors train on at
    most as many examples as the autoencoder (LunarLander: as many rollouts).
    """
    return _part(config, "predictor", progress, config.limit)


def test_data(config, progress=True):
    """Labelled data the chosen predictor is tested on, cut to `config.limit` like `predictor_data`."""
    return _part(config, "test", progress, config.limit)


def _tfds_data_dir():
    return os.environ.get("TFDS_DATA_DIR") or os.path.join(os.path.expanduser("~"), "tensorflow_datasets")


def describe(dataset, data_dir=None):
    """Lines saying what `dataset`'s parts are and where they would come from (no download).

    Args:
        dataset: registry name.
        data_dir: the `--data-dir` a run would use.
    """
    entry = REGISTRY[info(dataset).name]
    meta = entry.info
    height, width = meta.native_size
    outputs = f"{meta.num_outputs} predictor outputs" if meta.num_outputs else "one per class subfolder, if any"
    lines = [
        f"{dataset}: {meta.label_kind} labels ({outputs}); native {height}x{width}, "
        f"conv autoencoders see {meta.image_size}x{meta.image_size} ({meta.fit})"
    ]
    if dataset == "lunarlander":
        lines += [
            f"  {part:<11}  generated with gymnasium's LunarLander-v3, run '{part}', "
            f"{lunarlander.ROLLOUTS} rollouts x {lunarlander.STEPS} steps"
            + ("" if part == "autoencoder" else ", lander off-screen removed")
            for part in PARTS
        ]
        lines.append(f"  source: generated offline, cached under {lunarlander.default_cache_dir()}/lunarlander")
        return "\n".join(lines)
    for part, size in zip(PARTS, entry.sizes):
        where = []
        if entry.tfds:
            where.append(f"TFDS {entry.tfds.name} split '{entry.tfds.split(part)}'")
        if entry.local:
            where.append(f"local {entry.local.parts[part].description}")
        count = f"{size} images" if size else "size of the folder"
        lines.append(f"  {part:<11}  {count:>14}  {' | '.join(where)}")
    directory = local_directory(dataset, data_dir)
    if directory is not None and entry.local:
        missing = sorted({name for part in PARTS for name in entry.local.missing(part, directory)})
        if dataset == "pokemon" and not local_files.image_files(directory, required=False):
            missing = ["images"]
        state = f"missing {', '.join(missing)}" if missing else "files found"
        lines.append(f"  source: local files in {directory} ({state})")
    elif directory is not None:
        lines.append(f"  source: none: {dataset} has no local-file reader, drop --data-dir")
    elif entry.tfds:
        prepared = os.path.isdir(os.path.join(_tfds_data_dir(), entry.tfds.name))
        lines.append(
            f"  source: tensorflow-datasets '{entry.tfds.name}' in {_tfds_data_dir()} "
            + ("(prepared)" if prepared else f"(not prepared; downloads from {entry.tfds.host} on first use)")
        )
        if entry.local:
            lines.append(f"  or --data-dir with {entry.local.files}")
    else:
        lines.append(f"  source: local files only; pass --data-dir with {entry.local.files}")
    return "\n".join(lines)

