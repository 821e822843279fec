"""Evaluation: COCO keypoint AP (pycocotools), OKS NMS, rescoring, MPII PCKh.

It works on arrays and annotation files; the only thing it takes from :mod:`darkpose.data`
is COCO's OKS sigmas (the built-in metadata), imported when first needed.
"""

from darkpose.evaluation.coco import (
    STATS_NAMES,
    evaluate_coco,
    ground_truth_results,
    keypoint_results,
    load_coco_gt,
    rescore,
)
from darkpose.evaluation.nms import oks_matrix, oks_nms, soft_oks_nms
from darkpose.evaluation.pckh import (
    PckhGroundTruth,
    evaluate_pckh,
    load_pckh_ground_truth,
    pckh_per_joint,
)

__all__ = [
    "STATS_NAMES",
    "PckhGroundTruth",
    "evaluate_coco",
    "evaluate_pckh",
    "ground_truth_results",
    "keypoint_results",
    "load_coco_gt",
    "load_pckh_ground_truth",
    "oks_matrix",
    "oks_nms",
    "pckh_per_joint",
    "rescore",
    "soft_oks_nms",
]
