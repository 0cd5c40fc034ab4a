"""Weighted linear surrogate fits for all classes at once (LIME's ridge, KernelSHAP's OLS).

One solve with one right-hand side per class replaces the per-class regressions of the
``lime`` package; the numbers equal sklearn's ``Ridge``/``LinearRegression`` with
``sample_weight`` (centre X and y by their weighted means, then solve the normal equations).
The solve runs in torch (float64): numpy's BLAS threads spin after a call and slowed the
model's next forward passes on a 2-core machine.

>>> import torch
>>> from xai_widgets.methods.surrogate import weighted_linear_fit
>>> X = torch.tensor([[0, 1], [1, 0], [1, 1], [0, 0]], dtype=torch.float64)
>>> y = X @ torch.tensor([[2.0], [3.0]], dtype=torch.float64) + 1
>>> coef, intercept = weighted_linear_fit(X, y, torch.ones(4), alpha=0.0)
>>> [round(v, 6) for v in coef.ravel().tolist()], [round(v, 6) for v in intercept.tolist()]
([2.0, 3.0], [1.0])
"""

from __future__ import annotations

import torch


def weighted_linear_fit(X: torch.Tensor, Y: torch.Tensor, weights: torch.Tensor,
                        alpha: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Coefficients (n_features, n_outputs) and intercepts (n_outputs,) of a weighted
    ridge regression (``alpha`` = 0: ordinary least squares) with an intercept."""
    X, Y, weights = (torch.as_tensor(a).to(torch.float64) for a in (X, Y, weights))
    w = weights / weights.sum()
    x_mean, y_mean = w @ X, w @ Y
    root = w.sqrt()[:, None]
    Xw, Yw = (X - x_mean) * root, (Y - y_mean) * root
    # the weights were normalised to sum 1, so the penalty is scaled the same way
    gram = Xw.T @ Xw + alpha / weights.sum() * torch.eye(X.shape[1], dtype=torch.float64)
    coef, info = torch.linalg.solve_ex(gram, Xw.T @ Yw)
    if int(info) != 0:  # a segment never hidden or never kept: the least-norm solution
        coef = torch.linalg.lstsq(Xw, Yw, driver="gelsd").solution
    return coef, y_mean - x_mean @ coef
