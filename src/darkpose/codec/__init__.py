"""The DARK codec: Gaussian target encoding and distribution-aware decoding of heatmaps.

Pure array code: NumPy arrays or torch tensors in, the same type out. Knows no images.
"""

from darkpose.codec.bounds import interior_variance, position_bound
from darkpose.codec.decoding import (
    DARK_FIT_BAND,
    DARK_FIT_EVERYWHERE_KERNEL,
    DARK_INTERIOR_FIT_ITERATIONS,
    DARK_MAX_STEP,
    DECODE_METHODS,
    MAX_BLUR_KERNEL,
    decode,
    gaussian_kernel,
    kernel_variance,
    modulated_spread,
)
from darkpose.codec.encoding import ENCODE_METHODS, MIN_SIGMA, encode

__all__ = [
    "DARK_FIT_BAND",
    "DARK_FIT_EVERYWHERE_KERNEL",
    "DARK_INTERIOR_FIT_ITERATIONS",
    "DARK_MAX_STEP",
    "DECODE_METHODS",
    "ENCODE_METHODS",
    "MAX_BLUR_KERNEL",
    "MIN_SIGMA",
    "decode",
    "encode",
    "gaussian_kernel",
    "interior_variance",
    "kernel_variance",
    "modulated_spread",
    "position_bound",
]
