"""darkpose: top-down human pose estimation built around DARK.

DARK (Zhang et al., CVPR 2020) is the distribution-aware coordinate representation of
keypoints: unbiased Gaussian target encoding and distribution-aware decoding of heatmaps.
"""

__version__ = "0.1.0.dev0"

__all__ = ["PosePrediction", "Predictor", "__version__"]

_LAZY = {"Predictor": "darkpose.inference", "PosePrediction": "darkpose.inference"}


def __getattr__(name: str):
    """``darkpose.Predictor`` and ``darkpose.PosePrediction``, imported on first use (torch is
    not loaded by ``import darkpose``, so ``darkpose --help`` stays fast)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'darkpose' has no attribute {name!r}")
