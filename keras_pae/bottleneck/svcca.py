"""SVCCA between representations (Raghu et al., 2017), with the DFT route for conv maps.

Bottleneck paper, Section 3 (Fig. 4). Each representation (examples x
neurons) is centred and cut by SVD to the directions that explain
`keep_variance` (99%) of its variance; CCA between the two reduced
representations gives canonical correlations, and the similarity is their
mean. For conv maps (N, H, W, C) the SVCCA authors' `dft_ccas.fourier_ccas`
route is used: a 2-D DFT over the spatial axes makes a translation-invariant
covariance block-diagonal, so CCA runs per frequency on the channels; maps of
different sides keep the low frequencies of the smaller one. Numpy only.
"""

import numpy as np


def _svd(x, keep_variance):
    x = np.asarray(x, dtype=np.float64)
    x = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(x, full_matrices=False)
    variance = s**2
    total = variance.sum()
    if total <= 0:
        return u[:, :0], s[:0]
    nonzero = int(np.sum(s > s[0] * 1e-10))
    keep = int(np.searchsorted(np.cumsum(variance) / total, keep_variance - 1e-12) + 1)
    keep = min(keep, nonzero)
    return u[:, :keep], s[:keep]


def svd_reduce(x, keep_variance=0.99):
    """Centres `x` (N, D) and projects it on the top singular directions.

    Args:
        x: examples x neurons.
        keep_variance: share of the variance the kept directions explain;
            directions with (numerically) zero variance are always dropped.
    """
    u, s = _svd(x, keep_variance)
    return u * s


def svd_basis(x, keep_variance=0.99):
    """An orthonormal basis (N, k) of `svd_reduce(x)`'s span: its left singular vectors."""
    return _svd(x, keep_variance)[0]


def _basis_correlations(bx, by):
    if bx.shape[1] == 0 or by.shape[1] == 0:
        return np.zeros(0)
    return np.clip(np.linalg.svd(bx.T @ by, compute_uv=False), 0.0, 1.0)


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


def _frequency_bases(x, height, width, keep_variance):
    """Per kept spatial frequency, the SVD basis of the maps' DFT (real and imaginary parts)."""
    spectrum = _low_frequencies(np.fft.fft2(np.asarray(x, dtype=np.float64), axes=(1, 2)), height, width)
    return [svd_basis(_as_real(spectrum[:, i, j]), keep_variance) for i in range(height) for j in range(width)]


def _check_maps(x, y):
    if np.ndim(x) != 4 or np.ndim(y) != 4:
        raise ValueError(f"dft_svcca takes (N, H, W, C) maps; got shapes {np.shape(x)} and {np.shape(y)}.")
    if len(x) != len(y):
        raise ValueError(f"SVCCA needs the same examples on both sides; got {len(x)} and {len(y)}.")


def _mean_over_frequencies(bases_x, bases_y):
    correlations = np.concatenate([_basis_correlations(bx, by) for bx, by in zip(bases_x, bases_y)])
    return float(correlations.mean()) if correlations.size else 0.0


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
    _check_maps(x, y)
    height, width = min(np.shape(x)[1], np.shape(y)[1]), min(np.shape(x)[2], np.shape(y)[2])
    return _mean_over_frequencies(
        _frequency_bases(x, height, width, keep_variance), _frequency_bases(y, height, width, keep_variance)
    )


def similarity_matrix(representations, keep_variance=0.99, method="dft", progress=None):
    """Pairwise SVCCA of named representations (Fig. 4).

    Args:
        representations: dict name -> activations of the same examples,
            (N, H, W, C) maps for `"dft"`, any shape for `"flat"`.
        keep_variance: variance kept by each SVD.
        method: `"dft"` (conv maps, the paper's route) or `"flat"`.
        progress: optional callable of (pairs done, pairs in all), called
            after each pair.

    Returns:
        (names, matrix) with matrix[i, j] the similarity of names i and j.
    """
    if method not in ("dft", "flat"):
        raise ValueError(f"Unknown SVCCA method {method!r}; valid methods are dft, flat.")
    names = list(representations)
    matrix = np.eye(len(names))
    bases = {}  # (name, height, width) -> per-frequency bases, each SVD done once

    def frequency_bases(name, height, width):
        if (name, height, width) not in bases:
            bases[name, height, width] = _frequency_bases(representations[name], height, width, keep_variance)
        return bases[name, height, width]

    pairs, done = len(names) * (len(names) - 1) // 2, 0
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            x, y = representations[names[a]], representations[names[b]]
            if method == "flat":
                matrix[a, b] = svcca(x, y, keep_variance)
            else:
                _check_maps(x, y)
                height, width = min(np.shape(x)[1], np.shape(y)[1]), min(np.shape(x)[2], np.shape(y)[2])
                matrix[a, b] = _mean_over_frequencies(
                    frequency_bases(names[a], height, width), frequency_bases(names[b], height, width)
                )
            matrix[b, a] = matrix[a, b]
            done += 1
            if progress is not None:
                progress(done, pairs)
    return names, matrix
