"""The data registry: dataset name -> the autoencoder's images.

Light to import (no TensorFlow). Datasets of the other papers join `load`
as they are added.
"""

import dataclasses
from typing import Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class AutoencoderData:
    """Images an autoencoder trains and validates on.

    Args:
        images: uint8 array (N, H, W, 3).
        groups: optional ids of contiguous groups (LunarLander rollouts) that
            the validation split must not cut through.
    """

    images: np.ndarray
    groups: Optional[np.ndarray] = None


def autoencoder_data(config, progress=True):
    """Loads the autoencoder part of `config.dataset` (SPEC §6).

    Args:
        config: a validated `TrainConfig`.
        progress: show a progress bar while generating or downloading.
    """
    if config.dataset == "lunarlander":
        from keras_pae.data import lunarlander

        rollouts = config.rollouts
        if config.limit is not None:
            # Generate only what --limit uses: a quick run must not first
            # generate the full collection.
            rollouts = min(rollouts, -(-config.limit // config.steps))
        run = lunarlander.generate_run(
            "autoencoder",
            rollouts=rollouts,
            steps=config.steps,
            image_size=config.image_size,
            seed=config.data_seed,
            progress=progress,
        )
        if config.limit is not None:
            run = run.take(config.limit)
        return AutoencoderData(np.asarray(run.images), np.asarray(run.rollouts))
    raise ValueError(f"Unknown dataset {config.dataset!r}.")
