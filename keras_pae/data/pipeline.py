"""tf.data input pipelines shared by every procedure."""

import numpy as np
import tensorflow as tf


def validation_split(num_examples, groups=None, fraction=0.2):
    """Index where the trailing validation part starts.

    SPEC §4: the validation split is the LAST `fraction` of the data,
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


def image_dataset(images, batch_size, shuffle=False, seed=None):
    """Batches uint8 (or float) images into float32 in [0, 1].

    Args:
        images: array (N, H, W, C), uint8 in [0, 255] or float in [0, 1].
        batch_size: images per batch.
        shuffle: reshuffle every epoch (seeded).
        seed: shuffle seed.
    """
    dataset = tf.data.Dataset.from_tensor_slices(images)
    if shuffle:
        dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
    scale = 1.0 / 255.0 if np.asarray(images[:1]).dtype == np.uint8 else 1.0
    # Converting whole batches is cheaper than converting image by image.
    dataset = dataset.batch(batch_size).map(
        lambda x: tf.cast(x, tf.float32) * scale, num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.prefetch(tf.data.AUTOTUNE)
