"""darkpose: top-down human pose estimation built around DARK.

DARK (Zhang et al., CVPR 2020) is the distribution-aware coordinate representation of
keypoints: unbiased Gaussian target encoding and distribution-aware decoding of heatmaps.
"""

__version__ = "0.1.0.dev0"
