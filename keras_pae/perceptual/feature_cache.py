"""Cached loss-network features: p(X) of the training images, computed once.

The loss network is frozen (feature-prediction paper, Sec. IV), so p(X) of a training image never
changes: every procedure but I-I-PW would recompute the same features at every
epoch, as the FP target (I-F-FP, F-F-FP), the PS target (I-I-PS, F-I-PS) or the
encoder input (F-*). They are computed once per run into a float16 `.npy`
file read memory-mapped (`np.load(mmap_mode="r")`), so data larger than RAM
works, and fed by `pipeline.image_dataset(features=...)`.

The file stores p(X) - 0.5: features lie in [0.5, 1) (a sigmoid of a ReLU) and
most sit near 0.5, where float16 is far finer than at 0.5 itself. The file name
holds a hash of the images, the loss network (weights and layers) and how images
reach it, so changed data, limit, weights or image size never reuse stale
features.
"""

import glob
import hashlib
import json
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from keras_pae.data import pipeline

# Stored value = feature - OFFSET (see above); the pipeline adds it back.
OFFSET = pipeline.FEATURE_OFFSET
FORMAT_VERSION = 1


def cache_key(loss_network, images, image_size=None, fit="resize"):
    """A hex digest of everything the cached features depend on.

    Args:
        loss_network: the frozen loss network.
        images: the images (array, as the pipeline gets them).
        image_size, fit: how the pipeline brings them to the network's size.
    """
    images = np.ascontiguousarray(images)
    digest = hashlib.blake2b(digest_size=12)
    description = dict(
        version=FORMAT_VERSION, shape=images.shape, dtype=str(images.dtype), image_size=image_size, fit=fit,
        input_shape=loss_network.input_shape, layers=[layer.name for layer in loss_network.layers],
    )
    digest.update(json.dumps(description, default=str).encode())
    digest.update(memoryview(images.reshape(-1).view(np.uint8)))
    for weight in loss_network.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


def required_bytes(loss_network, num_images):
    """Disk space of the cached features of `num_images` images."""
    return int(num_images) * int(np.prod(loss_network.output_shape[1:])) * 2


def compute_features(loss_network, images, path, image_size=None, fit="resize", batch_size=256, progress=False):
    """Writes p(images) - OFFSET, flattened, as float16 to `path` and returns it memory-mapped.

    Written to a temporary file first, so a crash never leaves a partial cache.

    Args:
        loss_network: the frozen loss network.
        images: array (N, H, W, C), uint8 or float in [0, 1].
        path: the `.npy` file to write.
        image_size, fit: as `pipeline.image_dataset`.
        batch_size: images per loss-network call.
        progress: show a progress bar.
    """
    num_features = int(np.prod(loss_network.output_shape[1:]))
    partial = f"{path}.partial.npy"
    out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float16, shape=(len(images), num_features))

    @tf.function
    def features(batch):
        flat = tf.reshape(loss_network(batch, training=False), (tf.shape(batch)[0], -1))
        return tf.cast(flat - OFFSET, tf.float16)

    bar = keras.utils.Progbar(len(images), unit_name="image") if progress else None
    start = 0
    for batch in pipeline.image_dataset(images, batch_size, image_size=image_size, fit=fit):
        values = features(batch).numpy()
        out[start:start + len(values)] = values
        start += len(values)
        if bar is not None:
            bar.update(start)
    out.flush()
    del out
    os.replace(partial, path)
    return np.load(path, mmap_mode="r")


def cached_features(loss_network, images, directory, image_size=None, fit="resize", progress=False):
    """The cached features of `images` in `directory`, computed when missing or stale.

    Args:
        loss_network: the frozen loss network.
        images: array (N, H, W, C).
        directory: where the cache lives (e.g. the run's staging directory);
            files of other keys there are removed.
        image_size, fit: as `pipeline.image_dataset`.
        progress: show a progress bar while computing.

    Returns:
        A read-only memory-mapped float16 array (N, features) of p(X) - OFFSET.
    """
    path = os.path.join(directory, f"features-{cache_key(loss_network, images, image_size, fit)}.npy")
    if os.path.isfile(path):
        return np.load(path, mmap_mode="r")
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "features-*.npy")):
        os.remove(stale)
    if progress:
        print(f"Caching loss-network features of {len(images)} images in {directory}.")
    return compute_features(loss_network, images, path, image_size=image_size, fit=fit, progress=progress)


def remove(directory):
    """Deletes a cache directory (a finished run does not keep its features)."""
    shutil.rmtree(directory, ignore_errors=True)
