"""Least-squares fit of an isotropic Gaussian to a heatmap window, and its covariance.

Written once for NumPy arrays and torch tensors (``xp`` is the ``numpy`` or ``torch``
module): elementwise operations, sums over the last axis and matrix products only, so the
torch version traces and exports to ONNX.

The model of a window W (B, S, S) [row, column] centred on the integer maximum m is

    g(c, r) = a exp(-((t_c - u_x)^2 + (t_r - u_y)^2) / (2 s)),   t = -R .. R,

with u = mu - m the sub-pixel offset, a the amplitude and s = sigma^2 the spread: four
parameters p = (u_x, u_y, a, s), fitted to the pixels inside the frame by Gauss-Newton.
The Gaussian is separable, so every sum over the window that the normal equations need is a
product of 1-D sums over its columns and rows, except the data terms sum W g t^i, which
cost one (S, S) @ (S, 3) product per window. Under white noise this is the maximum-likelihood
estimate of the position when sigma and the amplitude are not known, and the (u, u) block of
s2 (J^T J)^-1, with s2 the residual variance, estimates its covariance.
"""

from __future__ import annotations

from typing import Any

FIT_ITERATIONS = 5  # Gauss-Newton steps from the decode's estimate (docs/codec.md, "How dark works")
_MIN_SPREAD = 0.1  # px^2: bounds on sigma^2 during the fit
_MAX_SPREAD = 400.0
_CONVERGED = 1e-6  # px: the fit stops when no offset moves by this much
SETTLED = 0.05  # px: a fit whose last step is longer is not used


def _moments(xp, t, u, s, inside):
    """Per axis (2, B, S): the 1-D factor e = exp(-(t - u)^2 / (2 s)) (times inside) and d = t - u."""
    d = t - u[..., None]
    e = xp.exp(-(d * d) / (2.0 * s[None, :, None])) * inside
    return d, e


def _normal_equations(xp, window, inside, t, u, s):
    """The normal matrix of the fit (entries of the symmetric 4 x 4 J^T J with a = 1) and
    the data terms, at offset u (2, B) and spread s (B,).

    Returns (X, Y, D): X[i], Y[i] = sum e^2 d^i over columns / rows (i = 0..4), and
    D[i][j] = sum_r sum_c W e_y d_y^i e_x d_x^j for i + j <= 2.
    """
    d, e = _moments(xp, t, u, s, inside)
    ed = e * d
    first = xp.stack((e, ed, ed * d))  # (3, 2, B, S): e d^i for i = 0, 1, 2
    sums = xp.concatenate((first * e, first[1:] * (ed * d))).sum(-1)  # (5, 2, B): sum e^2 d^i
    ey, ex = xp.moveaxis(first[:, 1], 0, 1), xp.moveaxis(first[:, 0], 0, -1)  # (B, 3, S), (B, S, 3)
    D = ey @ (window @ ex)  # (B, 3, 3): [i][j] = rows d_y^i, columns d_x^j
    return sums[:, 0], sums[:, 1], D


def _system(X, Y, D, a, s):
    """J^T J (as its 10 entries) and J^T r for p = (u_x, u_y, a, s) at amplitude a."""
    c = a / s
    f = a / (2.0 * s * s)
    m = {
        "xx": c * c * X[2] * Y[0], "xy": c * c * X[1] * Y[1], "yy": c * c * X[0] * Y[2],
        "xa": c * X[1] * Y[0], "ya": c * X[0] * Y[1], "aa": X[0] * Y[0],
        "xs": c * f * (X[3] * Y[0] + X[1] * Y[2]), "ys": c * f * (X[0] * Y[3] + X[2] * Y[1]),
        "as": f * (X[2] * Y[0] + X[0] * Y[2]), "ss": f * f * (X[4] * Y[0] + 2.0 * X[2] * Y[2] + X[0] * Y[4]),
    }  # fmt: skip
    data = (c * D[:, 0, 1], c * D[:, 1, 0], D[:, 0, 0], f * (D[:, 0, 2] + D[:, 2, 0]))
    # J^T r = J^T W - a J^T g, and J^T g is the normal matrix's column for a
    g = (m["xa"], m["ya"], m["aa"], m["as"])
    return m, [dv - a * gv for dv, gv in zip(data, g, strict=True)]


def _inverse_2x2(p, q, r):
    """[[p, q], [q, r]]^-1 as (p', q', r') and whether it exists (determinant > 0)."""
    det = p * r - q * q
    return r / det, -q / det, p / det, det > 0


def _eliminate(m):
    """Block elimination of J^T J over (u) and (a, s): D^-1 (as p, q, r), B D^-1, and the
    (u, u) block of the inverse, (A - B D^-1 B^T)^-1; ``ok`` where both 2 x 2 pivots are
    positive definite."""
    dp, dq, dr, ok_d = _inverse_2x2(m["aa"], m["as"], m["ss"])
    # B = [[xa, xs], [ya, ys]]; S = A - B D^-1 B^T
    bd = ((m["xa"] * dp + m["xs"] * dq, m["xa"] * dq + m["xs"] * dr),
          (m["ya"] * dp + m["ys"] * dq, m["ya"] * dq + m["ys"] * dr))  # fmt: skip
    sxx = m["xx"] - (bd[0][0] * m["xa"] + bd[0][1] * m["xs"])
    sxy = m["xy"] - (bd[0][0] * m["ya"] + bd[0][1] * m["ys"])
    syy = m["yy"] - (bd[1][0] * m["ya"] + bd[1][1] * m["ys"])
    ip, iq, ir, ok_s = _inverse_2x2(sxx, sxy, syy)
    return (dp, dq, dr), bd, (ip, iq, ir), ok_d & ok_s


def _solve(m, b):
    """(J^T J)^-1 b as the offset step du and the spread step ds, and ``ok`` (:func:`_eliminate`)."""
    (_, dq, dr), bd, (ip, iq, ir), ok = _eliminate(m)
    rx = b[0] - (bd[0][0] * b[2] + bd[0][1] * b[3])
    ry = b[1] - (bd[1][0] * b[2] + bd[1][1] * b[3])
    du = (ip * rx + iq * ry, iq * rx + ir * ry)
    ra, rs = b[2] - (m["xa"] * du[0] + m["ya"] * du[1]), b[3] - (m["xs"] * du[0] + m["ys"] * du[1])
    ds = dq * ra + dr * rs
    return du, ds, ok


def fit(xp, window, inside, u, s, iterations: int = FIT_ITERATIONS, max_offset: float | None = None,
        stop_early: bool = True):
    """Refine offsets u (2, B) and spreads s (B,) by Gauss-Newton on ``window`` (B, S, S).

    ``inside`` (2, B, S): 1 for the window's columns (0) and rows (1) inside the frame, else
    0. Non-finite window values must have been replaced. A step is taken only where the
    normal matrix is positive definite and the step finite; each moves u by at most 1 px
    per axis and s by a factor of at most 2; ``max_offset`` bounds |u| per axis.
    ``stop_early``: stop once no step moves u by 1e-6 px or more (not in a trace, whose
    graph holds every iteration). Returns the new (u, s) where the fit settled (its last
    step moved u by less than :data:`SETTLED` px), and the start elsewhere: on maps that are
    not one Gaussian the iteration can wander, and its answer is then not to be trusted.
    """
    u0, s0 = u, s
    step = xp.zeros_like(u)
    t = _axis(xp, window)
    for _ in range(iterations):
        X, Y, D = _normal_equations(xp, window, inside, t, u, s)
        a = D[:, 0, 0] / xp.where(X[0] * Y[0] > 0, X[0] * Y[0], 1.0)  # the best amplitude for this shape
        m, b = _system(X, Y, D, a, s)
        du, ds, ok = _solve(m, b)
        step = xp.stack(du)
        ok = ok & (a > 0) & xp.isfinite(step).all(0) & xp.isfinite(ds)
        step = xp.clip(xp.where(ok, step, 0.0), -1.0, 1.0)
        s = xp.clip(xp.where(ok, xp.clip(s + xp.where(ok, ds, 0.0), 0.5 * s, 2.0 * s), s), _MIN_SPREAD, _MAX_SPREAD)
        if max_offset is not None:
            step = xp.clip(u + step, -max_offset, max_offset) - u
        u = u + step
        if stop_early and float(abs(step).max()) < _CONVERGED:
            break
    settled = (abs(step) < SETTLED).all(0)
    return xp.where(settled, u, u0), xp.where(settled, s, s0)


def covariance(xp, window, inside, u, s) -> Any:
    """Estimated covariance (B, 2, 2) of the offset u (2, B) of the Gaussian of spread s (B,)
    in ``window``: s2 [(J^T J)^-1]_(u, u) at the least-squares amplitude, with s2 the
    residual variance over the n inside pixels, sum (W - g)^2 / (n - 4). Infinite variance
    (and 0 covariance) where the model does not fit: no positive amplitude, a singular
    normal matrix, fewer than 6 inside pixels.
    """
    t = _axis(xp, window)
    X, Y, D = _normal_equations(xp, window, inside, t, u, s)
    norm = X[0] * Y[0]
    a = D[:, 0, 0] / xp.where(norm > 0, norm, 1.0)
    m, _ = _system(X, Y, D, a, s)
    _, _, (ip, iq, ir), ok = _eliminate(m)
    d, e = _moments(xp, t, u, s, inside)
    model = a[:, None, None] * (e[1][:, :, None] * e[0][:, None, :])
    mask = inside[1][:, :, None] * inside[0][:, None, :]
    residual = (window - model) * mask
    n = inside[0].sum(-1) * inside[1].sum(-1)
    noise = (residual * residual).sum(-1).sum(-1) / xp.where(n > 4, n - 4, 1.0)
    ok = ok & (a > 0) & (n >= 6)
    var_x = xp.where(ok, noise * ip, float("inf"))
    var_y = xp.where(ok, noise * ir, float("inf"))
    cov_xy = xp.where(ok, noise * iq, 0.0)
    return xp.stack((xp.stack((var_x, cov_xy), -1), xp.stack((cov_xy, var_y), -1)), -2)


def _axis(xp, window):
    """t = -R .. R along a window's side, in the window's dtype and on its device."""
    S = window.shape[-1]
    if xp.__name__ == "torch":
        return xp.arange(S, dtype=window.dtype, device=window.device) - S // 2
    return (xp.arange(S) - S // 2).astype(window.dtype)
