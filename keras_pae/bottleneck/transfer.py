"""Knowledge transfer: linear probes on latent codes, 5-fold cross-validated.

Bottleneck paper, Section 3 (Fig. 3): logistic regression for
classes (macro F1) and linear regression for positions or landmarks (MSE) on
the flattened codes, with weight decay 0.01, against the same probe on raw
pixels. Both problems are convex, so they are solved to convergence (L-BFGS
and the ridge normal equations, numpy/scipy) rather than with SGD: the score
then depends on the features, not on an optimiser's schedule. Weight decay
`wd` is PyTorch's (gradient `wd * w`), i.e. the penalty `wd / 2 * ||W||^2` on
the mean loss; biases are not decayed. Features are standardised with the
training folds' mean and standard deviation.
"""

import numpy as np
from scipy import optimize

WEIGHT_DECAY = 0.01
FOLDS = 5


def macro_f1(labels, predictions, num_classes):
    """Unweighted mean over classes of F1 (a class absent from both counts as 0)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    scores = []
    for k in range(num_classes):
        tp = np.sum((predictions == k) & (labels == k))
        fp = np.sum((predictions == k) & (labels != k))
        fn = np.sum((predictions != k) & (labels == k))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return float(np.mean(scores))


def chance_f1(labels, num_classes):
    """Expected macro F1 of guessing with the label frequencies: the mean class frequency."""
    counts = np.bincount(np.asarray(labels), minlength=num_classes) / len(labels)
    # For a class of frequency p, random guessing at rate p has precision = recall = p.
    return float(np.mean(counts))


def fit_logistic(x, y, num_classes, weight_decay=WEIGHT_DECAY, max_iter=300):
    """Multinomial logistic regression, mean cross-entropy + wd/2 ||W||^2, by L-BFGS.

    Returns (W, b).
    """
    n, d = x.shape
    onehot = np.eye(num_classes)[y]

    def objective(params):
        w = params[: d * num_classes].reshape(d, num_classes)
        b = params[d * num_classes:]
        logits = x @ w + b
        logits -= logits.max(axis=1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -np.sum(onehot * log_probs) / n + 0.5 * weight_decay * np.sum(w * w)
        error = (np.exp(log_probs) - onehot) / n
        grad = np.concatenate([(x.T @ error + weight_decay * w).ravel(), error.sum(axis=0)])
        return loss, grad

    result = optimize.minimize(
        objective, np.zeros(d * num_classes + num_classes), jac=True, method="L-BFGS-B",
        options=dict(maxiter=max_iter),
    )
    return result.x[: d * num_classes].reshape(d, num_classes), result.x[d * num_classes:]


def fit_linear(x, y, weight_decay=WEIGHT_DECAY):
    """Linear regression, mean squared error + wd/2 ||W||^2, in closed form. Returns (W, b)."""
    n, d = x.shape
    x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - x_mean, y - y_mean
    # d/dW of (1/n)||XcW - Yc||^2 + wd/2 ||W||^2 = 0.
    w = np.linalg.solve(2 * xc.T @ xc / n + weight_decay * np.eye(d), 2 * xc.T @ yc / n)
    return w, y_mean - x_mean @ w


def fold_indices(n, folds=FOLDS, seed=0):
    """Seeded shuffled split of range(n) into `folds` test index arrays."""
    return np.array_split(np.random.default_rng(seed).permutation(n), folds)


def cross_validate(features, targets, kind, num_classes=None, folds=FOLDS, weight_decay=WEIGHT_DECAY, seed=0):
    """Mean held-out score of a linear probe over k folds.

    Args:
        features: (N, ...) codes or images; flattened.
        targets: class indices (N,) for `kind="class"`, values (N, K) or (N,)
            for `kind="regression"`.
        kind: `"class"` (logistic regression, macro F1, higher is better) or
            `"regression"` (linear regression, MSE, lower is better).
        num_classes: number of classes (default: max label + 1).
        folds: number of folds (the paper: 5).
        weight_decay: the paper's 0.01.
        seed: seeds the fold assignment.

    Returns:
        dict with `metric`, `mean`, `std` over folds and `folds`.
    """
    if kind not in ("class", "regression"):
        raise ValueError(f"Unknown probe kind {kind!r}; valid kinds are class, regression.")
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    y = np.asarray(targets)
    if kind == "class":
        y = y.astype(np.int64)
        num_classes = num_classes or int(y.max()) + 1
    else:
        y = y.astype(np.float64).reshape(len(y), -1)
    scores = []
    for test_index in fold_indices(len(x), folds, seed):
        train_mask = np.ones(len(x), bool)
        train_mask[test_index] = False
        mean, std = x[train_mask].mean(axis=0), x[train_mask].std(axis=0)
        std[std == 0] = 1.0
        train_x, test_x = (x[train_mask] - mean) / std, (x[test_index] - mean) / std
        if kind == "class":
            w, b = fit_logistic(train_x, y[train_mask], num_classes, weight_decay)
            scores.append(macro_f1(y[test_index], np.argmax(test_x @ w + b, axis=1), num_classes))
        else:
            w, b = fit_linear(train_x, y[train_mask], weight_decay)
            scores.append(float(np.mean((test_x @ w + b - y[test_index]) ** 2)))
    return {
        "metric": "macro_f1" if kind == "class" else "mse",
        "mean": float(np.mean(scores)),
        "std": float(np.std(scores)),
        "folds": scores,
    }
