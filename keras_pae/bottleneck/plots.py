"""The study's figures, like the bottleneck paper's Figs. 1-4 (matplotlib, Agg)."""

import matplotlib.ticker
import numpy as np

from keras_pae.core.plots import pyplot

plt = pyplot()

SIZE_COLOURS = ("Blues", "Oranges", "Greens", "Purples", "Reds")


def _colour(size_index, compression_index, num_compressions):
    shade = 0.35 + 0.65 * (compression_index + 1) / num_compressions
    return plt.get_cmap(SIZE_COLOURS[size_index % len(SIZE_COLOURS)])(shade)


def loss_curves(runs, path, title="", floor=None):
    """Fig. 1: train and test loss per epoch, colour by size, shade by channels.

    Args:
        runs: list of dicts with `label`, `size_index`, `compression_index`,
            `num_compressions`, `history` (rows with `loss`, `val_loss`).
        path: PNG to write.
        title: dataset name for the title.
        floor: a reference test loss drawn dashed (e.g. the mean image's).
    """
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharey=True)
    for panel, (key, name) in zip(axes, (("loss", "train"), ("val_loss", "test"))):
        for run in runs:
            epochs = [row["epoch"] + 1 for row in run["history"]]
            panel.plot(
                epochs, [row[key] for row in run["history"]], marker=".", label=run["label"],
                color=_colour(run["size_index"], run["compression_index"], run["num_compressions"]),
            )
        if floor is not None and key == "val_loss":
            panel.axhline(floor, color="grey", linestyle="--", linewidth=1, label="mean image")
        panel.set_yscale("log")
        panel.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        panel.set_xlabel("epoch")
        panel.set_title(f"{title} {name} loss (MSE)".strip())
        panel.grid(alpha=0.3)
    axes[0].set_ylabel("MSE")
    axes[1].legend(fontsize=7, ncol=2, title="bottleneck h x w x c")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def reconstruction_grid(originals, reconstructions, rows, columns, path, title=""):
    """Fig. 2: for each example, its reconstruction by every configuration.

    Args:
        originals: (K, H, W, C) images in [0, 1].
        reconstructions: dict (row, column) -> (K, H, W, C).
        rows: row labels (bottleneck sizes), columns: column labels (compressions).
        path: PNG to write.
        title: figure title.
    """
    examples = len(originals)
    figure, axes = plt.subplots(
        examples, len(columns) * len(rows) + 1, figsize=(1.0 * (len(columns) * len(rows) + 1), 1.1 * examples),
        squeeze=False,
    )

    def show(axis, image):
        image = np.clip(image, 0, 1)
        axis.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=1)
        axis.set_xticks([])
        axis.set_yticks([])

    for k in range(examples):
        show(axes[k, 0], originals[k])
        column = 1
        for row in rows:
            for name in columns:
                show(axes[k, column], reconstructions[(row, name)][k])
                if k == 0:
                    axes[k, column].set_title(f"{row}\n{name}", fontsize=6)
                column += 1
    axes[0, 0].set_title("input", fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def heatmap(matrix, row_labels, column_labels, path, title="", fmt="{:.2f}", cmap="viridis", center=None):
    """A labelled matrix (Figs. 3 and 4); with `center`, a diverging map around it."""
    matrix = np.asarray(matrix, dtype=float)
    figure, axis = plt.subplots(
        figsize=(1.2 + 0.65 * len(column_labels), 1.0 + 0.45 * len(row_labels))
    )
    kwargs = {}
    if center is not None:
        spread = np.nanmax(np.abs(matrix - center)) or 1.0
        kwargs = dict(vmin=center - spread, vmax=center + spread)
    image = axis.imshow(matrix, cmap=cmap, aspect="auto", **kwargs)
    axis.set_xticks(range(len(column_labels)), column_labels, rotation=60, ha="right", fontsize=7)
    axis.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            if np.isfinite(matrix[i, j]):
                shade = image.norm(matrix[i, j])
                colour = "k" if (center is None and shade > 0.6) or (center is not None and abs(shade - 0.5) < 0.3) else "w"
                axis.text(j, i, fmt.format(matrix[i, j]), ha="center", va="center", fontsize=6, color=colour)
    figure.colorbar(image, ax=axis)
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
