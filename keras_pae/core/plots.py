"""Figures shared by the paper families (matplotlib on its file-only Agg backend)."""

import numpy as np


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_image_grid(rows, path):
    """One row of images per `(label, images)` pair, the label on the left.

    Args:
        rows: `(label, array (N, H, W, 3) in [0, 1])` pairs of equal N.
        path: the PNG to write.
    """
    plt = pyplot()
    count = len(rows[0][1])
    fig, axes = plt.subplots(len(rows), count, figsize=(count * 1.1, len(rows) * 1.15), squeeze=False)
    for i, (label, batch) in enumerate(rows):
        for j in range(count):
            axes[i, j].imshow(np.clip(np.asarray(batch[j]), 0, 1))
            axes[i, j].set_xticks([])
            axes[i, j].set_yticks([])
        axes[i, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
