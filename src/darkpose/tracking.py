"""Temporal smoothing of poses in a video: the One-Euro filter, a greedy IoU tracker, and the
two together (:class:`PoseSmoother`).

One-Euro filter (Casiez, Roussel and Vogel, CHI 2012): an exponential low-pass whose cutoff
rises with the speed of the signal, so that slow motion is smoothed (little jitter) and fast
motion lags little. For samples x_i at times t_i, with T_e = t_i - t_{i-1}:

    alpha(T_e, f_c) = 1 / (1 + tau / T_e),  tau = 1 / (2 pi f_c)
    dx_i    = (x_i - x^_{i-1}) / T_e
    dx^_i   = alpha(T_e, d_cutoff) dx_i + (1 - alpha(T_e, d_cutoff)) dx^_{i-1}     (dx^_0 = 0)
    f_c     = min_cutoff + beta |dx^_i|
    x^_i    = alpha(T_e, f_c) x_i + (1 - alpha(T_e, f_c)) x^_{i-1}                 (x^_0 = x_0)

Boxes are (x, y, w, h) in pixels; keypoints (P, K, 3) as (x, y, score).
"""

from __future__ import annotations

import numpy as np

from darkpose.data._io import finite_number

__all__ = ["IoUTracker", "OneEuroFilter", "PoseSmoother", "box_iou"]


def _positive(value, field: str, allow_zero: bool = False) -> float:
    if not finite_number(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{field}: expected a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


def _array(value, field: str, shape: tuple) -> np.ndarray:
    """float64 array of ``shape`` (``None`` = any size), else a ValueError naming ``field``."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{field}: expected an array of numbers") from None
    if arr.ndim != len(shape) or any(s is not None and a != s for a, s in zip(arr.shape, shape, strict=True)):
        expected = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{field}: expected shape {expected}, got {arr.shape}")
    return arr


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` (N, 4) with every box of ``b`` (M, 4),
    both (x, y, w, h): (N, M). A pair whose union is empty, or with a non-finite box, has IoU 0."""
    a = _array(a, "a", (None, 4))
    b = _array(b, "b", (None, 4))
    with np.errstate(invalid="ignore"):
        wa, ha = np.clip(a[:, 2], 0, None), np.clip(a[:, 3], 0, None)
        wb, hb = np.clip(b[:, 2], 0, None), np.clip(b[:, 3], 0, None)
        iw = np.minimum(a[:, None, 0] + wa[:, None], b[None, :, 0] + wb) - np.maximum(a[:, None, 0], b[None, :, 0])
        ih = np.minimum(a[:, None, 1] + ha[:, None], b[None, :, 1] + hb) - np.maximum(a[:, None, 1], b[None, :, 1])
        inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
        union = (wa * ha)[:, None] + (wb * hb)[None, :] - inter
        ok = np.isfinite(inter) & (union > 0)
        return np.where(ok, inter / np.where(ok, union, 1.0), 0.0)


def _alpha(te: float, cutoff):
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / te)


class OneEuroFilter:
    """One-Euro filter over an array of values, element by element (see the module docstring).

    ``filt(x, t)`` returns the filtered ``x`` (any shape, the same at every call) at time ``t``
    seconds. The first sample is passed through. A non-finite element is returned as it is and
    leaves that element's state alone (its next T_e runs from its last finite sample); an
    element's first finite sample is passed through.

    Parameters
    ----------
    min_cutoff : float > 0
        Cutoff (Hz) at rest: lower smooths more.
    beta : float >= 0
        Speed coefficient: higher lags less in fast motion (0: a fixed exponential smoothing).
    d_cutoff : float > 0
        Cutoff (Hz) of the low-pass on the derivative.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0) -> None:
        self.min_cutoff = _positive(min_cutoff, "min_cutoff")
        self.beta = _positive(beta, "beta", allow_zero=True)
        self.d_cutoff = _positive(d_cutoff, "d_cutoff")
        self._x: np.ndarray | None = None  # last filtered value of each element
        self._dx: np.ndarray | None = None  # and its filtered derivative
        self._seen_at: np.ndarray | None = None  # time of each element's last finite sample
        self._t: float | None = None  # time of the last call

    def __call__(self, x, t: float) -> np.ndarray:
        x = np.array(x, dtype=np.float64)
        if not finite_number(t):
            raise ValueError(f"t: expected a finite time in seconds, got {t!r}")
        if self._x is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), float(t)
            self._seen_at = np.full_like(x, float(t))
            return x
        if x.shape != self._x.shape:
            raise ValueError(f"x: expected shape {self._x.shape} (as the first sample), got {x.shape}")
        if not t > self._t:
            raise ValueError(f"t: times must increase, got {t!r} after {self._t!r}")
        te = t - self._seen_at
        with np.errstate(invalid="ignore"):
            dx_hat = _alpha(te, self.d_cutoff) * ((x - self._x) / te) + (1 - _alpha(te, self.d_cutoff)) * self._dx
            a = _alpha(te, self.min_cutoff + self.beta * np.abs(dx_hat))
            x_hat = a * x + (1 - a) * self._x
        seen = np.isfinite(x)
        fresh = seen & ~np.isfinite(self._x)
        x_hat = np.where(fresh | ~seen, x, x_hat)
        self._dx = np.where(fresh, 0.0, np.where(seen, dx_hat, self._dx))
        self._x = np.where(seen, x_hat, self._x)
        self._seen_at = np.where(seen, float(t), self._seen_at)
        self._t = float(t)
        return x_hat


class IoUTracker:
    """Track ids for person boxes, frame by frame, by greedy IoU matching.

    At each :meth:`update` the pairs (box, live track) are taken in order of decreasing IoU;
    a pair with IoU >= ``iou_threshold`` whose box and track are both still free is matched
    (the track takes the box). Unmatched boxes start new tracks (ids 0, 1, 2, ... never
    reused); a track unmatched for more than ``max_age`` consecutive frames is dropped.

    Parameters
    ----------
    iou_threshold : float in (0, 1]
    max_age : int >= 0
    """

    def __init__(self, iou_threshold: float = 0.3, max_age: int = 10) -> None:
        self.iou_threshold = _positive(iou_threshold, "iou_threshold")
        if self.iou_threshold > 1:
            raise ValueError(f"iou_threshold: expected a number in (0, 1], got {iou_threshold!r}")
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise ValueError(f"max_age: expected an integer >= 0, got {max_age!r}")
        self.max_age = max_age
        self.track_ids = np.zeros(0, np.int64)
        """(T,) ids of the live tracks."""
        self._boxes = np.zeros((0, 4))
        self._ages = np.zeros(0, np.int64)
        self._next_id = 0

    def update(self, boxes) -> np.ndarray:
        """Match this frame's ``boxes`` (P, 4) xywh to the tracks.

        Returns
        -------
        (P,) int64 track ids; -1 for a box that is not finite or has no area (it neither
        matches nor starts a track).
        """
        boxes = _array(boxes, "boxes", (None, 4))
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > 0) & (boxes[:, 3] > 0)
        iou = box_iou(boxes, self._boxes)
        iou[~valid] = 0.0
        track_of = np.full(len(boxes), -1)
        taken = np.zeros(len(self._boxes), bool)
        for flat in np.argsort(-iou, axis=None, kind="stable"):
            i, j = divmod(int(flat), len(self._boxes))
            if iou[i, j] < self.iou_threshold:
                break
            if track_of[i] < 0 and not taken[j]:
                track_of[i], taken[j] = j, True
        matched = track_of >= 0
        ids = np.full(len(boxes), -1, np.int64)
        ids[matched] = self.track_ids[track_of[matched]]
        new = valid & ~matched
        ids[new] = np.arange(self._next_id, self._next_id + new.sum())
        self._next_id += int(new.sum())
        self._boxes[track_of[matched]] = boxes[matched]
        self._ages = np.where(taken, 0, self._ages + 1)
        keep = self._ages <= self.max_age
        self.track_ids = np.concatenate([self.track_ids[keep], ids[new]])
        self._boxes = np.concatenate([self._boxes[keep], boxes[new]])
        self._ages = np.concatenate([self._ages[keep], np.zeros(int(new.sum()), np.int64)])
        return ids


class PoseSmoother:
    """One-Euro smoothing of keypoints per person track (tracks from :class:`IoUTracker`).

    ``update(keypoints, boxes, t)`` returns the keypoints with x and y of each tracked person
    filtered by that track's own :class:`OneEuroFilter` (its first frame passed through); the
    scores, and persons whose box is not finite, pass unchanged. A filter is dropped with its
    track. After each update, :attr:`track_ids` holds the (P,) track id of each person (-1:
    untracked).

    Parameters
    ----------
    min_cutoff, beta : float
        Of the One-Euro filters (``d_cutoff`` 1 Hz).
    iou_threshold : float
    max_age : int
        Of the tracker: frames a lost track is kept.
    """

    def __init__(
        self, min_cutoff: float = 1.0, beta: float = 0.0, iou_threshold: float = 0.3, max_age: int = 10
    ) -> None:
        OneEuroFilter(min_cutoff, beta)  # validates the parameters once, here
        self.min_cutoff, self.beta = min_cutoff, beta
        self.tracker = IoUTracker(iou_threshold, max_age)
        self.track_ids = np.zeros(0, np.int64)
        self._filters: dict[int, OneEuroFilter] = {}
        self._t: float | None = None

    def update(self, keypoints, boxes, t_seconds: float) -> np.ndarray:
        """Smooth one frame.

        Parameters
        ----------
        keypoints : (P, K, 3) (x, y, score)
        boxes : (P, 4) (x, y, w, h), the persons' boxes (for the tracking)
        t_seconds : float
            The frame's time; must increase from call to call.

        Returns
        -------
        (P, K, 3) float64, a new array.
        """
        kpts = _array(keypoints, "keypoints", (None, None, 3))
        boxes = _array(boxes, "boxes", (len(kpts), 4))
        if not finite_number(t_seconds):
            raise ValueError(f"t_seconds: expected a finite time in seconds, got {t_seconds!r}")
        if self._t is not None and not t_seconds > self._t:
            raise ValueError(f"t_seconds: times must increase, got {t_seconds!r} after {self._t!r}")
        self._t = float(t_seconds)
        self.track_ids = self.tracker.update(boxes)
        out = kpts.copy()
        for p, track in enumerate(self.track_ids.tolist()):
            if track >= 0:
                filt = self._filters.setdefault(track, OneEuroFilter(self.min_cutoff, self.beta))
                out[p, :, :2] = filt(kpts[p, :, :2], self._t)
        live = set(self.tracker.track_ids.tolist())
        self._filters = {k: f for k, f in self._filters.items() if k in live}
        return out
