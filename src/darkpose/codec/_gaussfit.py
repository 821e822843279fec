"""Least-squares fit of an isotropic Gaussian to a heatmap window, and its covariance.

Written once for NumPy arrays and torch tensors (``xp`` is the ``numpy`` or ``torch``
module): elementwise operations, sums over the last axis and matrix products only, so the
torch version traces and exports to ONNX.

The model of a window W (B, S, S) [row, column] centred on the integer maximum m is

    g(c, r) = a e(c, r),  e = exp(-((t_c - u_x)^2 + (t_r - u_y)^2) / (2 s)),  t = -R .. R,

with u = mu - m the sub-pixel offset, a the amplitude and s = sigma^2 the spread: four
parameters p = (u_x, u_y, a, s), fitted to the pixels inside the frame by Gauss-Newton. The
Jacobian of g is phi diag(a/s, a/s, 1, a/(2 s^2)) with the basis
phi = (d_x e, d_y e, e, (d_x^2 + d_y^2) e), d = t - u; the diagonal scale cancels from a
Gauss-Newton step, which is solved in the basis phi and rescaled. The Gaussian is separable,
so every sum over the window that the normal equations need is a product of 1-D sums over its
columns and rows, except the data terms sum W e d^i; those the fit needs (i + j <= 2, one
axis at a time) are 1-D sums over two profiles of the window, its columns weighted by the row
factor of e and its rows by the column factor: two matrix-vector products per window.

The fit weights the pixels by a Gaussian taper of sigma ``taper`` x sqrt(s) centred on its
estimate: a second, weaker peak in the window pulls an untapered fit towards it (the spread,
free, grows to take it in). The taper is separable too, so it only changes the rates of the
exponentials. The covariance is that of the untapered fit: under white noise the (u, u)
block of s2 (J^T J)^-1, with s2 the residual variance, the Cramér-Rao bound of the model.
"""

from __future__ import annotations

from typing import Any

FIT_ITERATIONS = 3  # Gauss-Newton steps from the decode's estimate (docs/codec.md, "How dark works")
FIT_TAPER = 1.5  # the taper's sigma over the fitted sigma
_MIN_SPREAD = 0.1  # px^2: bounds on sigma^2 during the fit
_PEAK_SPREAD = 0.25  # px^2: a fit that ends narrower (sigma < 0.5 px) has found a spike: u = 0
_MAX_SPREAD = 400.0


def _sums(xp, window, inside, t, u, gram_rate, data_rate):
    """The separable sums of the normal equations at offset u (2, B).

    ``gram_rate`` and ``data_rate`` (B,) are the exponents, per px^2 of d^2 on one axis, of the
    weights of the normal matrix (taper x e^2) and of the data terms (taper x e). Returns
    X, Y (5, B): sum_t w_g d^i over columns / rows, i = 0..4, and the data terms
    D (3, 2, B): D[i, 0] = sum W w_d d_x^i and D[i, 1] = sum W w_d d_y^i (so D[0, 0] = D[0, 1]).
    Each is a 1-D sum over a profile of the window: its columns weighted by the row factor of
    w_d, or its rows by the column factor, two batched matrix-vector products.
    """
    d = t - u[..., None]  # (2, B, S)
    dd = d * d
    wg = xp.exp(dd * gram_rate[:, None]) * inside
    wd = xp.exp(dd * data_rate[:, None]) * inside
    ones = t * 0.0 + 1.0  # sums over the last axis as products with ones: 3x a sum's speed
    gd, gdd = wg * d, wg * dd
    sums = xp.stack((wg, gd, gdd, gdd * d, gdd * dd)) @ ones  # (5, 2, B)
    profiles = xp.stack(((wd[1][:, None, :] @ window)[:, 0], (window @ wd[0][:, :, None])[:, :, 0]))
    wd = wd * profiles
    wdd = wd * d
    return sums[:, 0], sums[:, 1], xp.stack((wd, wdd, wdd * d)) @ ones


def _gram(X, Y):
    """The normal matrix in the basis phi (its 10 entries, by name) from the 1-D sums."""
    return {
        "xx": X[2] * Y[0], "xy": X[1] * Y[1], "yy": X[0] * Y[2],
        "xa": X[1] * Y[0], "ya": X[0] * Y[1], "aa": X[0] * Y[0],
        "xs": X[3] * Y[0] + X[1] * Y[2], "ys": X[0] * Y[3] + X[2] * Y[1],
        "as": X[2] * Y[0] + X[0] * Y[2], "ss": X[4] * Y[0] + 2.0 * X[2] * Y[2] + X[0] * Y[4],
    }  # fmt: skip


def _inverse_2x2(p, q, r):
    """[[p, q], [q, r]]^-1 as (p', q', r') and whether it exists (determinant > 0)."""
    det = p * r - q * q
    return r / det, -q / det, p / det, det > 0


def _eliminate(m):
    """Block elimination of the normal matrix over (u) and (a, s): D^-1 (as p, q, r), B D^-1,
    and the (u, u) block of the inverse, (A - B D^-1 B^T)^-1; ``ok`` where both 2 x 2 pivots
    are positive definite."""
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
    """m^-1 b for b = (b_x, b_y, 0, b_s) (the amplitude's entry is 0 at the least-squares
    amplitude) as the offset part z_u, the spread part z_s, and ``ok`` (:func:`_eliminate`)."""
    (_, dq, dr), bd, (ip, iq, ir), ok = _eliminate(m)
    rx, ry = b[0] - bd[0][1] * b[3], b[1] - bd[1][1] * b[3]
    zu = (ip * rx + iq * ry, iq * rx + ir * ry)
    ra, rs = -(m["xa"] * zu[0] + m["ya"] * zu[1]), b[3] - (m["xs"] * zu[0] + m["ys"] * zu[1])
    return zu, dq * ra + dr * rs, ok


def fit(xp, window, inside, u, s, iterations: int = FIT_ITERATIONS, max_offset: float | None = None,
        taper: float | None = FIT_TAPER, spread_first: bool = True):
    """Refine offsets u (2, B) and spreads s (B,) by Gauss-Newton on ``window`` (B, S, S).

    ``inside`` (2, B, S): 1 for the window's columns (0) and rows (1) inside the frame, else
    0. Non-finite window values must have been replaced. With ``spread_first`` the first step
    moves the spread alone (and the amplitude, always at its least-squares value): near a
    corner or for a peak beyond the frame the offset and the spread are so correlated that a
    full step from a wrong spread throws the offset far. The others move all four. Each step moves u by at
    most 1 px per axis and s by a factor of at most 2; ``max_offset`` bounds |u| per axis.
    ``taper``: the weights' sigma over the fitted sigma (None: unweighted). Returns the new
    (u, s) where every step was defined (a positive amplitude, a positive definite normal
    matrix, a finite step), u = 0 where the fit then ends narrower than 0.25 px^2 (a spike,
    whose position is the maximum's pixel), and the start elsewhere. A fixed number of steps
    and no data-dependent stop, so a trace holds the whole fit and a GPU never waits on the
    host.
    """
    u0, s0 = u, s
    t = _axis(xp, window)
    k_gram, k_data = (1.0, 0.5) if taper is None else (1.0 + 0.5 / taper**2, 0.5 + 0.5 / taper**2)
    good = s > 0
    for step_number in range(iterations):
        X, Y, D = _sums(xp, window, inside, t, u, -k_gram / s, -k_data / s)
        m = _gram(X, Y)
        a = D[0, 0] / xp.where(m["aa"] > 0, m["aa"], 1.0)  # the best amplitude for this shape
        b = (D[1, 0] - a * m["xa"], D[1, 1] - a * m["ya"], 0.0, D[2, 0] + D[2, 1] - a * m["as"])
        if step_number == 0 and spread_first:  # the spread alone first: the start's offset is the better half of it
            _, _, dr, ok = _inverse_2x2(m["aa"], m["as"], m["ss"])
            zu, zs = (0.0 * a, 0.0 * a), dr * b[3]
        else:
            zu, zs, ok = _solve(m, b)
        scale = s / xp.where(a > 0, a, 1.0)  # the basis phi to the parameters: du = z_u s / a, ds = 2 s^2 z_s / a
        step, ds = xp.stack(zu) * scale, (2.0 * s * scale) * zs
        ok = ok & (a > 0) & xp.isfinite(step.sum(0) + ds)
        good = good & ok
        s = xp.clip(xp.clip(s + xp.where(ok, ds, 0.0), 0.5 * s, 2.0 * s), _MIN_SPREAD, _MAX_SPREAD)
        u = u + xp.clip(xp.where(ok, step, 0.0), -1.0, 1.0)
        if max_offset is not None:
            u = xp.clip(u, -max_offset, max_offset)
    spike = good & (s < _PEAK_SPREAD)  # then the maximum itself is the best estimate
    good = good & ~spike
    return xp.where(good, u, xp.where(spike, 0.0 * u, u0)), xp.where(good, s, s0)


def covariance(xp, window, inside, u, s) -> Any:
    """Estimated covariance (B, 2, 2) of the offset u (2, B) of the Gaussian of spread s (B,)
    in ``window``: s2 [(J^T J)^-1]_(u, u) at the least-squares amplitude a, with s2 the
    residual variance over the n inside pixels, sum (W - a e)^2 / (n - 4). Infinite variance
    (and 0 covariance) where the model does not fit: no positive amplitude, a singular
    normal matrix, fewer than 6 inside pixels.
    """
    t = _axis(xp, window)
    X, Y, D = _sums(xp, window, inside, t, u, -1.0 / s, -0.5 / s)
    m = _gram(X, Y)
    a = D[0, 0] / xp.where(m["aa"] > 0, m["aa"], 1.0)
    _, _, (ip, iq, ir), ok = _eliminate(m)
    mask = inside[1][:, :, None] * inside[0][:, None, :]
    # sum (W - a e)^2 = sum W^2 - 2 a sum W e + a^2 sum e^2 = sum W^2 - a sum W e at this a
    squares = (window * window * mask).sum(-1).sum(-1) - a * D[0, 0]
    n = inside[0].sum(-1) * inside[1].sum(-1)
    noise = xp.clip(squares, 0.0, None) / xp.where(n > 4, n - 4, 1.0)
    ok = ok & (a > 0) & (n >= 6)
    # J^T J = L m L with L = diag(a/s, a/s, 1, a/(2 s^2)), so its inverse's (u, u) block is m's over (a/s)^2
    noise = noise * (s / xp.where(a > 0, a, 1.0)) ** 2
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
