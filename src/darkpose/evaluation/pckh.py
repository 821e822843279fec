"""MPII PCKh from its definition, against the official ``gt_valid.mat``.

A visible joint is correct when its distance to the ground truth is at most
``threshold x head size``, head size = 0.6 x the diagonal of the annotated head box (the
reference's ``SC_BIAS``). PCKh@0.5 uses threshold 0.5, PCKh@0.1 threshold 0.1.
The table reports per joint group (left and right averaged) and the mean over all visible
joints except pelvis and thorax, weighted by each joint's number of visible instances (as
the reference). Values are percentages.

Where the reference gives no figure or a silent one: a visible joint of a person with a zero
head box is a miss (the reference's figure, with a warning giving the count), as is a
non-finite prediction (warned); a row with no visible joint reads 0.0 instead of NaN
(warned), and a row with one side visible averages that side.

``gt_valid.mat`` holds ``pos_gt_src`` (16, 2, N) 1-based joint positions, ``jnt_missing``
(16, N) (1 = not annotated) and ``headboxes_src`` (2, 2, N) (two corners of the head box);
``dataset_joints`` (optional) names the joints.

Note: the reference prints "Mean@0.1" from index 11 of its threshold grid
``arange(0, 0.51, 0.01)``, i.e. at threshold 0.11; pass ``low_threshold=0.11`` to compare
with its printed numbers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HEAD_SIZE_FACTOR = 0.6
"""Head size = 0.6 x head-box diagonal (the reference's SC_BIAS)."""

MPII_GROUPS: dict[str, tuple[int, ...]] = {
    "Head": (9,),
    "Shoulder": (13, 12),
    "Elbow": (14, 11),
    "Wrist": (15, 10),
    "Hip": (3, 2),
    "Knee": (4, 1),
    "Ankle": (5, 0),
}
"""Table rows -> MPII joint indices (head_top; left, right)."""

EXCLUDED_FROM_MEAN = (6, 7)
"""Pelvis and thorax."""


@dataclass(frozen=True)
class PckhGroundTruth:
    """Ground truth of PCKh, 0-based joint positions.

    positions : (N, K, 2) float64, 0-based (x, y)
    visible : (N, K) bool
    head_sizes : (N,) float64, 0.6 x head-box diagonal
    """

    positions: np.ndarray
    visible: np.ndarray
    head_sizes: np.ndarray


def _field(mat: dict, name: str, where: str) -> np.ndarray:
    if name not in mat:
        raise ValueError(f"{where}: missing field {name!r}")
    return np.asarray(mat[name], dtype=np.float64)


def load_pckh_ground_truth(path: str | Path) -> PckhGroundTruth:
    """Read ``gt_valid.mat`` (pos_gt_src, jnt_missing, headboxes_src).

    Raises a ``FileNotFoundError`` naming a missing file and a ``ValueError`` naming the
    file and the field for a missing or mis-shaped field.
    """
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"PCKh ground-truth file not found: {path}")
    where = str(path)
    try:
        mat = loadmat(str(path))
    except Exception as e:  # scipy raises several types for a bad file
        raise ValueError(f"{where}: not a readable MATLAB file ({e})") from None
    pos = _field(mat, "pos_gt_src", where)
    missing = _field(mat, "jnt_missing", where)
    heads = _field(mat, "headboxes_src", where)
    if pos.ndim != 3 or pos.shape[1] != 2:
        raise ValueError(f"{where}: field 'pos_gt_src' must be (K, 2, N), got {pos.shape}")
    k, _, n = pos.shape
    if missing.shape != (k, n):
        raise ValueError(f"{where}: field 'jnt_missing' must be ({k}, {n}), got {missing.shape}")
    if heads.shape != (2, 2, n):
        raise ValueError(f"{where}: field 'headboxes_src' must be (2, 2, {n}), got {heads.shape}")
    return PckhGroundTruth(
        positions=np.transpose(pos, (2, 0, 1)) - 1.0,
        visible=(missing == 0).T,
        head_sizes=HEAD_SIZE_FACTOR * np.linalg.norm(heads[1] - heads[0], axis=0),
    )


def _scaled_errors(predictions: np.ndarray, gt: PckhGroundTruth) -> np.ndarray:
    """(N, K) distance / head size; warns of visible joints that count as misses however
    close the prediction: zero head boxes (as the reference) and non-finite predictions."""
    predictions = np.asarray(predictions, dtype=np.float64)[..., :2]
    if predictions.shape != gt.positions.shape:
        raise ValueError(
            f"predictions must be {gt.positions.shape} (one per ground-truth person, in "
            f"file order), got {predictions.shape}"
        )
    zero_head = gt.visible.any(axis=1) & ~(gt.head_sizes > 0)
    if zero_head.any():
        warnings.warn(
            f"PCKh: {int(zero_head.sum())} ground-truth persons have a zero head box; their "
            f"{int(gt.visible[zero_head].sum())} visible joints count as misses (as the reference)",
            stacklevel=3,
        )
    non_finite = gt.visible & ~np.isfinite(predictions).all(axis=-1)
    if non_finite.any():
        warnings.warn(
            f"PCKh: {int(non_finite.sum())} predictions of visible joints are not finite; "
            "they count as misses",
            stacklevel=3,
        )
    err = np.linalg.norm(predictions - gt.positions, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return err / gt.head_sizes[:, None]


def _counts(scaled: np.ndarray, gt: PckhGroundTruth, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    correct = (scaled <= threshold) & gt.visible
    return correct.sum(axis=0), gt.visible.sum(axis=0)


def pckh_per_joint(
    predictions: np.ndarray, gt: PckhGroundTruth, threshold: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Correct and visible counts per joint.

    predictions (N, K, 2) 0-based (x, y) -> (correct (K,), visible (K,)) int arrays.
    A visible joint of a person with a zero head box, or with a non-finite prediction,
    is a miss (with a warning giving the count).
    """
    return _counts(_scaled_errors(predictions, gt), gt, threshold)


def evaluate_pckh(
    predictions: np.ndarray,
    gt: PckhGroundTruth | str | Path,
    threshold: float = 0.5,
    low_threshold: float = 0.1,
) -> dict[str, float]:
    """The PCKh table: Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean, Mean@<low>.

    Parameters
    ----------
    predictions : (N, 16, 2) 0-based image coordinates, one per entry of ``valid.json``
    gt : :class:`PckhGroundTruth` or the path of ``gt_valid.mat``
    threshold, low_threshold : PCKh thresholds (0.5 and 0.1)

    Returns
    -------
    dict of percentages; the keys are ``"Mean"`` for PCKh@threshold and ``"Mean@0.1"``
    (named after ``low_threshold``). A row averages the per-joint PCKh of its joints
    that have visible instances; a row (or mean) with no visible joint reads 0.0, with
    a warning naming it. Misses as in :func:`pckh_per_joint`.
    """
    if not isinstance(gt, PckhGroundTruth):
        gt = load_pckh_ground_truth(gt)
    k = gt.positions.shape[1]
    scaled = _scaled_errors(predictions, gt)
    correct, visible = _counts(scaled, gt, threshold)
    low_correct, _ = _counts(scaled, gt, low_threshold)
    seen = visible > 0
    per_joint = np.divide(100.0 * correct, visible, out=np.zeros(k), where=seen)
    table: dict[str, float] = {}
    empty = []
    if k == 16:
        for name, joints in MPII_GROUPS.items():
            js = [j for j in joints if seen[j]]
            table[name] = float(np.mean(per_joint[js])) if js else 0.0
            if not js:
                empty.append(name)
    mask = np.ones(k, dtype=bool)
    if k == 16:
        mask[list(EXCLUDED_FROM_MEAN)] = False
    total = visible[mask].sum()
    if not total:
        empty.append("Mean")
    for key, c in (("Mean", correct), (f"Mean@{low_threshold:g}", low_correct)):
        table[key] = float(100.0 * c[mask].sum() / total) if total else 0.0
    if empty:
        warnings.warn(f"PCKh: no visible joint for {', '.join(empty)}: reported as 0", stacklevel=2)
    return table
