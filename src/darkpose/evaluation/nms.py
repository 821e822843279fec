"""OKS non-maximum suppression of pose candidates (hard and soft), per image.

OKS between two poses i, j (the reference's ``oks_iou``, symmetric):
``mean_k exp(-d_k^2 / (2 (2 sigma_k)^2 ((a_i + a_j)/2 + eps)))`` with d_k the distance of
keypoint k and a the areas (200 s_w)(200 s_h) of the crops.

Candidates are visited best score first; among equal scores the later candidate comes
first, as the reference's ``scores.argsort()[::-1]``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def coco_sigmas() -> np.ndarray:
    """COCO's 17 OKS sigmas, read from the built-in metadata (``darkpose/data/metadata/coco.json``)."""
    from darkpose.data.keypoint_metadata import load_metadata  # imports torch: only when needed

    return load_metadata("coco").sigmas


def check_sigmas(sigmas: np.ndarray | None, k: int, where: str = "the poses") -> np.ndarray:
    """``sigmas`` as a (K,) float64 array of positive finite values (COCO's when None);
    ``where`` names what has the K keypoints in the message."""
    sigmas = coco_sigmas() if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if sigmas.shape != (k,):
        raise ValueError(
            f"sigmas must have one value per keypoint ({k} keypoints in {where}), "
            f"got shape {sigmas.shape}"
        )
    if not (np.isfinite(sigmas).all() and (sigmas > 0).all()):
        raise ValueError(f"sigmas must be positive finite numbers, got {sigmas.tolist()}")
    return sigmas


def check_finite(
    name: str, values: np.ndarray, label: Callable[[int], str], nonnegative: bool = False
) -> None:
    """Raise a ValueError naming the first pose (row of ``values``) with a value that is
    not finite, or with ``nonnegative`` negative; ``label(i)`` names pose i."""
    ok, expected = np.isfinite(values), "finite"
    if nonnegative and ok.all():
        ok, expected = values >= 0, "non-negative"
    if ok.all():
        return
    bad = np.argwhere(~ok)
    first = tuple(int(v) for v in bad[0])
    at = f" at {list(first[1:])}" if len(first) > 1 else ""
    raise ValueError(
        f"{label(first[0])}: {name} must be {expected}, got {values[first]}{at} "
        f"({len(np.unique(bad[:, 0]))} of {len(values)} such)"
    )


def _check_poses(keypoints, scores, areas) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    keypoints = np.asarray(keypoints, dtype=np.float64)
    if keypoints.ndim != 3 or keypoints.shape[2] not in (2, 3):
        raise ValueError(f"keypoints must be (N, K, 2) or (N, K, 3), got shape {keypoints.shape}")
    n = len(keypoints)
    scores = np.asarray(scores, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    for name, v in (("scores", scores), ("areas", areas)):
        if v.shape != (n,):
            raise ValueError(f"{name} must have one value per pose ({n}), got shape {v.shape}")
    check_finite("keypoints", keypoints, "pose {}".format)
    check_finite("score", scores, "pose {}".format)
    check_finite("area", areas, "pose {}".format, nonnegative=True)
    return keypoints, scores, areas


def oks_matrix(
    keypoints: np.ndarray,
    areas: np.ndarray,
    sigmas: np.ndarray | None = None,
    in_vis_thre: float | None = None,
) -> np.ndarray:
    """Pairwise OKS of the poses of one image.

    Parameters
    ----------
    keypoints : (N, K, 2) or (N, K, 3) array; the third column (scores) is only used
        with ``in_vis_thre``
    areas : (N,) array
    sigmas : (K,) array, default COCO's
    in_vis_thre : float or None
        If set, only keypoints scoring above it in both poses count (a pair with none
        has OKS 0). The reference passes None.

    Returns
    -------
    (N, N) float64, symmetric, ones on the diagonal (when no keypoint is masked).
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    n, k = keypoints.shape[:2]
    sigmas = check_sigmas(sigmas, k)
    areas = np.asarray(areas, dtype=np.float64).reshape(n)
    xy = keypoints[:, :, :2]
    d2 = ((xy[:, None] - xy[None, :]) ** 2).sum(-1)  # (N, N, K)
    var = (2.0 * sigmas) ** 2
    mean_area = (areas[:, None] + areas[None, :]) / 2.0 + np.spacing(1)
    e = d2 / var / mean_area[..., None] / 2.0
    ex = np.exp(-e)
    if in_vis_thre is None:
        return ex.mean(-1)
    vis = keypoints[:, :, 2] > in_vis_thre
    mask = vis[:, None] & vis[None, :]
    count = mask.sum(-1)
    total = (ex * mask).sum(-1)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def _best_first(scores: np.ndarray) -> np.ndarray:
    """Indices by descending score; among equal scores the later index first: the
    reference's ``argsort()[::-1]`` where numpy's unstable default keeps ties in order
    (its classic introsort below 17 elements), made deterministic with a stable sort."""
    return np.argsort(scores, kind="stable")[::-1]


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    threshold: float = 0.9,
    sigmas: np.ndarray | None = None,
    in_vis_thre: float | None = None,
) -> np.ndarray:
    """Greedy OKS NMS: keep the best-scoring pose, drop those with OKS > ``threshold``.

    keypoints (N, K, 2|3), scores (N,), areas (N,) -> kept indices (M,), best first;
    among equal scores the later pose first (as the reference). Non-finite keypoints,
    scores or areas (and negative areas) raise a ValueError naming the pose.
    """
    keypoints, scores, areas = _check_poses(keypoints, scores, areas)
    if len(scores) == 0:
        return np.zeros(0, dtype=np.intp)
    return greedy_nms(oks_matrix(keypoints, areas, sigmas, in_vis_thre), scores, threshold)


def greedy_nms(overlap: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Greedy NMS over a precomputed overlap matrix (OKS of poses, IoU of boxes): keep the
    best-scoring candidate, drop those whose overlap with it is > ``threshold``, repeat.

    overlap (N, N), scores (N,) -> kept indices (M,), best first; among equal scores the
    later candidate first (as the reference).
    """
    order = _best_first(np.asarray(scores))
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = rest[overlap[i, rest] <= threshold]
    return np.asarray(keep, dtype=np.intp)


def soft_oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    threshold: float = 0.9,
    sigmas: np.ndarray | None = None,
    in_vis_thre: float | None = None,
    max_dets: int = 20,
) -> np.ndarray:
    """Soft OKS NMS (Gaussian decay), as the reference ``soft_oks_nms``.

    Repeatedly keeps the best remaining pose and decays the others' scores by
    ``exp(-oks^2 / threshold)``, up to ``max_dets`` poses. Only the selection and its
    order come out; the kept poses keep their own (undecayed) scores, as in the reference.
    Equal (decayed) scores are ordered as the reference orders them: the later in the
    current order first. Bad input raises as in :func:`oks_nms`.

    keypoints (N, K, 2|3), scores (N,), areas (N,) -> kept indices (M <= max_dets,).
    """
    keypoints, scores, areas = _check_poses(keypoints, scores, areas)
    if len(scores) == 0:
        return np.zeros(0, dtype=np.intp)
    oks = oks_matrix(keypoints, areas, sigmas, in_vis_thre)
    order = _best_first(scores)
    live = scores[order]
    keep = []
    while order.size and len(keep) < max_dets:
        i = order[0]
        keep.append(i)
        order, live = order[1:], live[1:]
        live = live * np.exp(-(oks[i, order] ** 2) / threshold)
        resort = _best_first(live)
        order, live = order[resort], live[resort]
    return np.asarray(keep, dtype=np.intp)
