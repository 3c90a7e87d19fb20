"""`ImageData`: the images and labels of one part of a dataset, in memory."""

import dataclasses
from typing import Optional

import numpy as np


@dataclasses.dataclass(frozen=True)
class ImageData:
    """Images of one part of a dataset, at their native size.

    Args:
        images: uint8 array (N, H, W, C), C = 1 or 3; pipelines convert to
            the model's size and 3 channels.
        labels: class indices (N,), positions (N, 2k) or binary attributes
            (N, k); None when unlabelled.
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

    def select(self, index):
        """The examples at `index` (an integer array or a boolean mask)."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return ImageData(self.images[index], pick(self.labels), pick(self.groups))

    @staticmethod
    def concatenate(parts):
        """The examples of `parts`, one after the other (labels kept only if all have them)."""
        join = lambda arrays: None if any(a is None for a in arrays) else np.concatenate(arrays)  # noqa: E731
        return ImageData(
            np.concatenate([p.images for p in parts]),
            join([p.labels for p in parts]),
            join([p.groups for p in parts]),
        )
