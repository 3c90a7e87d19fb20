"""SVCCA between representations (Raghu et al., 2017), with the DFT route for conv maps.

Bottleneck paper, Section 3 (Fig. 4; SPEC §8). Each representation (examples x
neurons) is centred and cut by SVD to the directions that explain
`keep_variance` (99%) of its variance; CCA between the two reduced
representations gives canonical correlations, and the similarity is their
mean. For conv maps (N, H, W, C) the SVCCA authors' `dft_ccas.fourier_ccas`
route is used: a 2-D DFT over the spatial axes makes a translation-invariant
covariance block-diagonal, so CCA runs per frequency on the channels; maps of
different sides keep the low frequencies of the smaller one. Numpy only.
"""

import numpy as np


def svd_reduce(x, keep_variance=0.99):
    """Centres `x` (N, D) and projects it on the top singular directions.

    Args:
        x: examples x neurons.
        keep_variance: share of the variance the kept directions explain;
            directions with (numerically) zero variance are always dropped.
    """
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    variance = s**2
    total = variance.sum()
    if total <= 0:
        return x[:, :0]
    nonzero = int(np.sum(s > s[0] * 1e-10))
    keep = int(np.searchsorted(np.cumsum(variance) / total, keep_variance - 1e-12) + 1)
    keep = min(keep, nonzero)
    return u[:, :keep] * s[:keep]


def cca_correlations(x, y):
    """Canonical correlations of two centred representations (N, Dx), (N, Dy), descending."""
    if x.shape[1] == 0 or y.shape[1] == 0:
        return np.zeros(0)
    qx, _ = np.linalg.qr(x - x.mean(axis=0))
    qy, _ = np.linalg.qr(y - y.mean(axis=0))
    return np.clip(np.linalg.svd(qx.T @ qy, compute_uv=False), 0.0, 1.0)


def svcca(x, y, keep_variance=0.99):
    """SVCCA similarity (mean canonical correlation) of two flat representations.

    Args:
        x, y: (N, Dx), (N, Dy) activations of the same N examples.
        keep_variance: variance kept by each SVD (the paper: 0.99).
    """
    x, y = _flat(x), _flat(y)
    if len(x) != len(y):
        raise ValueError(f"SVCCA needs the same examples on both sides; got {len(x)} and {len(y)}.")
    rho = cca_correlations(svd_reduce(x, keep_variance), svd_reduce(y, keep_variance))
    return float(rho.mean()) if rho.size else 0.0


def _flat(x):
    x = np.asarray(x)
    return x.reshape(len(x), -1)


def _low_frequencies(spectrum, height, width):
    """Keeps the `height` x `width` lowest spatial frequencies (the SVCCA code's resize)."""
    for axis, side in ((1, height), (2, width)):
        n = spectrum.shape[axis]
        if n != side:
            freqs = np.fft.fftfreq(n, d=1.0 / n)
            spectrum = np.take(spectrum, np.flatnonzero((freqs >= -side / 2) & (freqs < side / 2)), axis=axis)
    return spectrum


def _as_real(z):
    """Complex (N, C) -> real (N, 2C): CCA over real and imaginary parts."""
    return np.concatenate([z.real, z.imag], axis=1)


def dft_svcca(x, y, keep_variance=0.99):
    """SVCCA of two conv maps through the DFT, averaged over frequencies.

    Per frequency, CCA runs on the reduced channels; the similarity is the
    mean of all canonical correlations over all frequencies, as the SVCCA
    authors' `fourier_ccas` results are averaged.

    Args:
        x, y: (N, H, W, C) activations of the same N examples; the larger map
            keeps the smaller one's lowest frequencies.
        keep_variance: variance kept by each SVD (the paper: 0.99).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.ndim != 4 or y.ndim != 4:
        raise ValueError(f"dft_svcca takes (N, H, W, C) maps; got shapes {x.shape} and {y.shape}.")
    if len(x) != len(y):
        raise ValueError(f"SVCCA needs the same examples on both sides; got {len(x)} and {len(y)}.")
    height, width = min(x.shape[1], y.shape[1]), min(x.shape[2], y.shape[2])
    fx = _low_frequencies(np.fft.fft2(x, axes=(1, 2)), height, width)
    fy = _low_frequencies(np.fft.fft2(y, axes=(1, 2)), height, width)
    correlations = []
    for i in range(height):
        for j in range(width):
            correlations.append(
                cca_correlations(
                    svd_reduce(_as_real(fx[:, i, j]), keep_variance),
                    svd_reduce(_as_real(fy[:, i, j]), keep_variance),
                )
            )
    correlations = np.concatenate(correlations)
    return float(correlations.mean()) if correlations.size else 0.0


def similarity_matrix(representations, keep_variance=0.99, method="dft"):
    """Pairwise SVCCA of named representations (Fig. 4).

    Args:
        representations: dict name -> activations of the same examples,
            (N, H, W, C) maps for `"dft"`, any shape for `"flat"`.
        keep_variance: variance kept by each SVD.
        method: `"dft"` (conv maps, the paper's route) or `"flat"`.

    Returns:
        (names, matrix) with matrix[i, j] the similarity of names i and j.
    """
    if method not in ("dft", "flat"):
        raise ValueError(f"Unknown SVCCA method {method!r}; valid methods are dft, flat.")
    measure = dft_svcca if method == "dft" else svcca
    names = list(representations)
    matrix = np.eye(len(names))
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            matrix[a, b] = matrix[b, a] = measure(
                representations[names[a]], representations[names[b]], keep_variance
            )
    return names, matrix
