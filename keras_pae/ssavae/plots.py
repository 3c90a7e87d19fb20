"""The adversarial VAE's figures (Figs. 7-9 of the paper), as PNG files.

Semi-supervised adversarial VAE paper, Section 3.4: the 2-D latent
space coloured by class, images generated from chosen latent points (a grid
over the latent plane, and samples per class), and reconstructions per
(beta, gamma).
"""

import os

import numpy as np

from keras_pae.core.plots import pyplot
from keras_pae.data import pipeline

GRID_SIDE = 15
SAMPLES_PER_CLASS = 10
MAX_CLASSES_SHOWN = 12
RECONSTRUCTED_IMAGES = 12


def mosaic(images, rows, columns, pad=1):
    """Tiles `rows * columns` images (N, H, W, C) in [0, 1] into one (H', W', C) array."""
    images = np.asarray(images)
    _, height, width, channels = images.shape
    out = np.ones((rows * (height + pad) - pad, columns * (width + pad) - pad, channels), np.float32)
    for i, image in enumerate(images[: rows * columns]):
        r, c = divmod(i, columns)
        out[r * (height + pad): r * (height + pad) + height, c * (width + pad): c * (width + pad) + width] = image
    return out


def _show(ax, tiled):
    if tiled.shape[-1] == 1:
        ax.imshow(tiled[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(np.clip(tiled, 0.0, 1.0))


def _decode(decoder, z):
    return np.asarray(decoder.predict(pipeline.array_batches(np.asarray(z, np.float32), 256), verbose=0))


def latent_scatter(mu, labels, path, num_classes):
    """Test-set mu in the latent plane (its first two axes), one colour per class (Fig. 7)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 6))
    cmap = "tab10" if num_classes <= 10 else "nipy_spectral"
    points = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap=cmap, s=3, alpha=0.6, vmin=-0.5, vmax=num_classes - 0.5)
    if num_classes <= 20:
        fig.colorbar(points, ax=ax, ticks=range(num_classes), label="class")
    ax.set_xlabel("z1")
    ax.set_ylabel("z2")
    ax.set_title("Latent space of the test images (mu)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def latent_grid(decoder, mu, path, side=GRID_SIDE):
    """Images decoded from a side x side grid over the 1st-99th percentile box of mu (Fig. 8)."""
    plt = pyplot()
    low, high = np.percentile(mu[:, :2], [1, 99], axis=0)
    xs = np.linspace(low[0], high[0], side)
    ys = np.linspace(high[1], low[1], side)  # top row = largest z2, as on the scatter
    z = np.array([[x, y] for y in ys for x in xs], np.float32)
    images = _decode(decoder, z)
    fig, ax = plt.subplots(figsize=(8, 8))
    _show(ax, mosaic(images, side, side))
    ax.set_axis_off()
    ax.set_title(f"Decoded grid: z1 in [{low[0]:.2f}, {high[0]:.2f}], z2 in [{low[1]:.2f}, {high[1]:.2f}]")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def class_samples(decoder, mu, labels, path, seed=0, per_class=SAMPLES_PER_CLASS, max_classes=MAX_CLASSES_SHOWN):
    """Per class, images decoded from z drawn from a Gaussian fitted to that class's mu."""
    plt = pyplot()
    rng = np.random.default_rng(seed)
    classes = [c for c in np.unique(labels) if np.sum(labels == c) >= 2][:max_classes]
    z = []
    for c in classes:
        points = mu[labels == c]
        cov = np.atleast_2d(np.cov(points, rowvar=False))
        z.append(rng.multivariate_normal(points.mean(axis=0), cov, size=per_class))
    images = _decode(decoder, np.concatenate(z))
    fig, ax = plt.subplots(figsize=(per_class * 0.7 + 1, len(classes) * 0.7 + 0.6))
    _show(ax, mosaic(images, len(classes), per_class))
    height = images.shape[1] + 1
    ax.set_yticks([height * i + height / 2 for i in range(len(classes))], [f"class {c}" for c in classes])
    ax.set_xticks([])
    ax.set_title("Samples per class (z ~ the class's Gaussian in latent space)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def reconstruction_grid(images, reconstructions, path):
    """Inputs, then one row of reconstructions per (beta, gamma), grouped by gamma (Fig. 9).

    Args:
        images: the input images (N, H, W, C).
        reconstructions: {(beta, gamma): decoded images (N, H, W, C)}.
        path: PNG file to write.
    """
    plt = pyplot()
    keys = sorted(reconstructions, key=lambda k: (k[1], k[0]))
    rows = [images] + [reconstructions[k] for k in keys]
    names = ["input"] + [f"γ={g:g} β={b:g}" for b, g in keys]
    columns = len(images)
    fig, ax = plt.subplots(figsize=(columns * 0.7 + 1.6, len(rows) * 0.7 + 0.6))
    _show(ax, mosaic(np.concatenate(rows), len(rows), columns))
    height = images.shape[1] + 1
    ax.set_yticks([height * i + height / 2 for i in range(len(rows))], names)
    ax.set_xticks([])
    ax.set_title("Test images and their reconstructions per (β, γ)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(out, config, test_images, test_labels, test_mu, decoders, num_classes):
    """Writes every figure of a run into `out`; returns {file name: description}.

    Args:
        out: run directory.
        config: the run's `AdversarialVAEConfig`.
        test_images, test_labels: the test set.
        test_mu: its encodings (mu).
        decoders: {(beta, gamma): decoder model}.
        num_classes: number of classes.
    """
    chosen = decoders[(config.beta, config.gamma)]
    label = f"β={config.beta:g}, γ={config.gamma:g}"
    figures = {}
    if config.latent_dim >= 2:
        what = "test mu by class" if config.latent_dim == 2 else "first two latent axes of test mu by class"
        latent_scatter(test_mu, test_labels, os.path.join(out, "latent_scatter.png"), num_classes)
        figures["latent_scatter.png"] = what
    if config.latent_dim == 2:
        latent_grid(chosen, test_mu, os.path.join(out, "latent_grid.png"))
        figures["latent_grid.png"] = f"images decoded from a grid over the latent plane ({label})"
    class_samples(chosen, test_mu, test_labels, os.path.join(out, "class_samples.png"), seed=config.seed)
    figures["class_samples.png"] = f"images decoded from per-class Gaussians in latent space ({label})"
    pick = np.random.default_rng(config.seed).permutation(len(test_images))[:RECONSTRUCTED_IMAGES]
    inputs = test_images[pick]
    mu = test_mu[pick]
    reconstruction_grid(
        inputs, {key: _decode(decoder, mu) for key, decoder in decoders.items()},
        os.path.join(out, "reconstructions.png"),
    )
    figures["reconstructions.png"] = "test images and their reconstructions per (β, γ) (Fig. 9)"
    return figures
