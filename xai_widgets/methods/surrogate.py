"""Weighted linear surrogate fits for all classes at once (LIME's ridge, KernelSHAP's OLS).

One solve with one right-hand side per class replaces the per-class regressions of the
``lime`` package; the numbers equal sklearn's ``Ridge``/``LinearRegression`` with
``sample_weight`` (centre X and y by their weighted means, then solve the normal equations).

>>> import numpy as np
>>> from xai_widgets.methods.surrogate import weighted_linear_fit
>>> X = np.array([[0, 1], [1, 0], [1, 1], [0, 0]], float); y = X @ [[2.0], [3.0]] + 1
>>> coef, intercept = weighted_linear_fit(X, y, np.ones(4), alpha=0.0)
>>> np.round(coef.ravel(), 6).tolist(), np.round(intercept, 6).tolist()
([2.0, 3.0], [1.0])
"""

from __future__ import annotations

import numpy as np


def weighted_linear_fit(X: np.ndarray, Y: np.ndarray, weights: np.ndarray,
                        alpha: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients (n_features, n_outputs) and intercepts (n_outputs,) of a weighted
    ridge regression (``alpha`` = 0: ordinary least squares) with an intercept."""
    X, Y, w = (np.asarray(a, dtype=np.float64) for a in (X, Y, weights))
    w = w / w.sum()
    x_mean, y_mean = w @ X, w @ Y
    Xc, Yc = X - x_mean, Y - y_mean
    root = np.sqrt(w)[:, None]
    Xw, Yw = Xc * root, Yc * root
    if alpha > 0:
        # the weights were normalised to sum 1, so the penalty is scaled the same way
        gram = Xw.T @ Xw + alpha / np.sum(weights) * np.eye(X.shape[1])
        coef = np.linalg.solve(gram, Xw.T @ Yw)
    else:
        coef = np.linalg.lstsq(Xw, Yw, rcond=None)[0]
    return coef, y_mean - x_mean @ coef
