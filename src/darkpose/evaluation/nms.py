"""OKS non-maximum suppression of pose candidates (hard and soft), per image.

OKS between two poses i, j (the reference's ``oks_iou``, symmetric):
``mean_k exp(-d_k^2 / (2 (2 sigma_k)^2 ((a_i + a_j)/2 + eps)))`` with d_k the distance of
keypoint k and a the areas (200 s_w)(200 s_h) of the crops.
"""

from __future__ import annotations

import numpy as np

COCO_SIGMAS = np.array(
    [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
     0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
)
"""OKS sigmas of the 17 COCO keypoints (COCO keypoint evaluation)."""


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
    sigmas = COCO_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if sigmas.shape != (k,):
        raise ValueError(f"sigmas must have one value per keypoint ({k}), got {sigmas.shape}")
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


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    threshold: float = 0.9,
    sigmas: np.ndarray | None = None,
    in_vis_thre: float | None = None,
) -> np.ndarray:
    """Greedy OKS NMS: keep the best-scoring pose, drop those with OKS > ``threshold``.

    keypoints (N, K, 2|3), scores (N,), areas (N,) -> kept indices (M,), best first.
    Ties in score keep the earlier pose first.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return np.zeros(0, dtype=np.intp)
    oks = oks_matrix(keypoints, areas, sigmas, in_vis_thre)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = rest[oks[i, rest] <= threshold]
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

    keypoints (N, K, 2|3), scores (N,), areas (N,) -> kept indices (M <= max_dets,).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) == 0:
        return np.zeros(0, dtype=np.intp)
    oks = oks_matrix(keypoints, areas, sigmas, in_vis_thre)
    order = np.argsort(-scores, kind="stable")
    live = scores[order]
    keep = []
    while order.size and len(keep) < max_dets:
        i = order[0]
        keep.append(i)
        order, live = order[1:], live[1:]
        live = live * np.exp(-(oks[i, order] ** 2) / threshold)
        resort = np.argsort(-live, kind="stable")
        order, live = order[resort], live[resort]
    return np.asarray(keep, dtype=np.intp)
