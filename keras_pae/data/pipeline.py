"""tf.data input pipelines shared by every procedure."""

import os

import numpy as np
import tensorflow as tf

# Cached features are stored as p(X) - FEATURE_OFFSET (see
# `keras_pae.perceptual.feature_cache`); batches hand out p(X).
FEATURE_OFFSET = 0.5
# Batches converted and queued ahead of the model.
PREFETCH_BATCHES = 2


def finish(dataset, convert=None):
    """`dataset` mapped by `convert` in parallel and prefetched, without tf.data's autotuner.

    The autotuner runs a thread per iterator that sleeps on a timer growing to
    a minute, and deleting the iterator waits for it to wake. `fit` deletes
    its iterator at the end of every epoch, so some epochs started with up to
    19 s of both cores idle (a 1.8x spread between identical epochs). A fixed
    parallelism of one call per core and a fixed prefetch leave no such
    thread and measure the same steady speed.

    Args:
        dataset: a batched `tf.data.Dataset`.
        convert: optional function applied to every element.
    """
    if convert is not None:
        dataset = dataset.map(convert, num_parallel_calls=os.cpu_count() or 1)
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(PREFETCH_BATCHES).with_options(options)


def array_batches(arrays, batch_size):
    """Batches of in-memory `arrays` (an array or a tuple of them), in order, for `predict` and `evaluate`.

    Under op determinism (`set_seeds`' default), `predict` or `evaluate` on
    arrays through Keras's own adapter makes TensorFlow 2.21 log "E0000 ...
    NodeDef mentions attribute use_unbounded_threadpool ..." (from a rewrite of
    the adapter's parallel map): an error line in a run's output that reports
    no error. These batches need no map, and they are the same batches.

    Args:
        arrays: a NumPy array or a tuple of arrays of equal length.
        batch_size: examples per batch (the last one may be smaller).
    """
    return finish(tf.data.Dataset.from_tensor_slices(arrays).batch(batch_size))


def validation_split(num_examples, groups=None, fraction=0.2):
    """Index where the trailing validation part starts.

    The authors' code: the validation split is the LAST `fraction` of the data,
    contiguous; with `groups` (e.g. LunarLander rollout ids, contiguous runs of
    equal values) it is rounded to the nearest group boundary so no rollout is
    split between training and validation.

    Args:
        num_examples: number of examples.
        groups: optional array of group ids, one per example.
        fraction: share of the data used for validation.
    """
    split = int(round(num_examples * (1 - fraction)))
    if groups is not None and num_examples:
        groups = np.asarray(groups)
        boundaries = np.flatnonzero(groups[1:] != groups[:-1]) + 1
        if len(boundaries):
            split = int(boundaries[np.argmin(np.abs(boundaries - split))])
    if not 0 < split < num_examples:
        raise ValueError(
            f"{num_examples} examples are too few to hold out {fraction:.0%} for "
            "validation; use a larger --limit."
        )
    return split


FITS = ("resize", "wrap")


def to_model_images(images, image_size=None, fit="resize"):
    """uint8 or float images -> float32 in [0, 1], 3 channels, `image_size` square.

    Grey images are repeated over 3 channels. Other sizes are resized
    (bilinear), e.g. Fashion-MNIST's 28x28 to the conv models' 64x64, or with
    `fit="wrap"` tiled: SVHN's 32x32 becomes the 2x2 tiling the papers use,
    `np.pad(img, ((0, 32), (0, 32), (0, 0)), mode="wrap")`.

    Args:
        images: tensor (N, H, W, C) with C = 1 or 3.
        image_size: side of the output; None keeps the size.
        fit: `"resize"` or `"wrap"`.
    """
    if fit not in FITS:
        raise ValueError(f"Unknown fit {fit!r}; valid fits are {', '.join(FITS)}.")
    scale = 1.0 / 255.0 if images.dtype == tf.uint8 else 1.0
    images = tf.cast(images, tf.float32) * scale
    if images.shape[-1] == 1:
        images = tf.repeat(images, 3, axis=-1)
    height, width = images.shape[1:3]
    if image_size is None or (height, width) == (image_size, image_size):
        return images
    if fit == "wrap":
        reps = (-(-image_size // height), -(-image_size // width))
        return tf.tile(images, (1, *reps, 1))[:, :image_size, :image_size]
    return tf.clip_by_value(tf.image.resize(images, (image_size, image_size)), 0.0, 1.0)


def image_dataset(
    images, batch_size, shuffle=False, seed=None, labels=None, image_size=None, fit="resize",
    features=None, with_images=True,
):
    """Batches images (and labels, or cached features) into float32 images in [0, 1].

    Args:
        images: array (N, H, W, C), uint8 in [0, 255] or float in [0, 1].
        batch_size: images per batch.
        shuffle: reshuffle every epoch (seeded).
        seed: shuffle seed.
        labels: optional array (N, ...) yielded with the images.
        image_size: side the images are converted to (see `to_model_images`).
        fit: how other sizes reach `image_size`: `"resize"` or `"wrap"`.
        features: optional cached loss-network features of `images`, as
            `feature_cache.cached_features` returns them (possibly
            memory-mapped); batches are then dicts `{"images", "features"}`
            with float32 p(X), in the same order as without them.
        with_images: with `features`, False leaves the images out (procedures
            that need no pixels once p(X) is known: F-I-PS, F-F-FP).
    """
    if features is not None:
        return _feature_dataset(images, features, batch_size, shuffle, seed, image_size, fit, with_images)
    dataset = tf.data.Dataset.from_tensor_slices(images if labels is None else (images, labels))
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    # Converting whole batches is cheaper than converting image by image.
    if labels is None:
        convert = lambda x: to_model_images(x, image_size, fit)  # noqa: E731
    else:
        convert = lambda x, y: (to_model_images(x, image_size, fit), y)  # noqa: E731
    return finish(dataset.batch(batch_size), convert)


def _feature_dataset(images, features, batch_size, shuffle, seed, image_size, fit, with_images):
    if len(features) != len(images):
        raise ValueError(f"{len(features)} cached feature rows for {len(images)} images.")
    # Rows are fetched by index, so memory-mapped features stay on disk; the
    # shuffle permutes (image, index) pairs exactly as it permutes images alone.
    indices = np.arange(len(images), dtype=np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((images, indices) if with_images else indices)
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    num_features = features.shape[1]

    def fetch(batch_indices):
        rows = tf.numpy_function(
            lambda i: np.asarray(features[i]), [batch_indices], tf.as_dtype(features.dtype), stateful=False
        )
        rows.set_shape((None, num_features))
        return tf.cast(rows, tf.float32) + FEATURE_OFFSET

    if with_images:
        convert = lambda x, i: {"images": to_model_images(x, image_size, fit), "features": fetch(i)}  # noqa: E731
    else:
        convert = lambda i: {"features": fetch(i)}  # noqa: E731
    return finish(dataset.batch(batch_size), convert)
