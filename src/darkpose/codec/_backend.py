"""The array operations the codec is written with, for NumPy and for torch.

The codec's algorithms are written once, against :class:`Backend`: elementwise math through
``backend.xp`` (the ``numpy`` or ``torch`` module, whose names and ``axis=`` keywords agree for
everything the codec uses) and the few operations whose spelling differs as methods.

The backend is chosen from the input (``decode`` uses it for NumPy arrays only: torch
tensors go to :mod:`darkpose.codec.torch_decode`). NumPy arrays, and for ``encode`` torch
tensors on the CPU, are computed with NumPy. Tensors on any other device are computed with
torch on that device, so nothing leaves it. Results go back in the caller's type
(:func:`wrap`). Three heavy primitives run through torch on the CPU as well, on zero-copy
views, where they are faster than NumPy's: reading rows of windows (``gather_rows``) and
entries along an axis (``take_along``), the decode's matrix products (``matmul``) and the
outer product of ``encode`` (``outer_into``).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch


class Backend:
    """Operations for one array library on one device."""

    xp: Any
    float32: Any
    float64: Any
    int64: Any

    def __init__(self) -> None:
        self._constants: dict[tuple, Any] = {}

    def constant(self, key: tuple, make: Callable[[], np.ndarray], dtype: Any = None) -> Any:
        """A cached array made once by ``make()`` (NumPy) for this backend and dtype."""
        full_key = (*key, str(dtype))
        if full_key not in self._constants:
            value = self.asarray(make())
            self._constants[full_key] = value if dtype is None else self.astype(value, dtype)
        return self._constants[full_key]


class NumpyBackend(Backend):
    xp = np
    float32, float64, int64 = np.float32, np.float64, np.int64

    def asarray(self, a):
        return np.asarray(a)

    def is_float(self, a) -> bool:
        return np.issubdtype(a.dtype, np.floating)

    def astype(self, a, dtype):
        return a.astype(dtype, copy=False)

    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def arange(self, *args):
        return np.arange(*args, dtype=np.int64)

    def take_along(self, a, index, axis):
        """``np.take_along_axis``, with ``index`` broadcast to ``a`` on the other axes; through
        torch, three times faster than NumPy's when the index is broadcast."""
        shape = [n if d != axis and m == 1 else m for d, (n, m) in enumerate(zip(a.shape, index.shape, strict=True))]
        return torch.gather(_tensor_view(a), axis, torch.from_numpy(index).expand(shape)).numpy()

    def nonzero(self, mask):
        return np.flatnonzero(mask)

    def contiguous(self, a):
        return np.ascontiguousarray(a)

    def argmax_rows(self, maps):
        return maps.argmax(axis=1)

    def gather_rows(self, flat, starts, length):
        """(len(starts), length): ``flat[s : s + length]`` for each start s."""
        source = _tensor_view(flat)
        rows = source.as_strided((source.numel() - length + 1, length), (1, 1))
        return rows.index_select(0, torch.from_numpy(starts)).numpy()

    def matmul(self, a, b):
        """a @ b through torch (MKL): twice as fast as NumPy's BLAS on the decode's shapes."""
        return torch.mm(_tensor_view(a), _tensor_view(b)).numpy()

    def outer_into(self, a, b, out):
        """out[..., i, j] = a[..., i] * b[..., j]."""
        torch.mul(torch.from_numpy(a)[..., :, None], torch.from_numpy(b)[..., None, :], out=torch.from_numpy(out))
        return out


class TorchBackend(Backend):
    xp = torch
    float32, float64, int64 = torch.float32, torch.float64, torch.int64

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device

    def asarray(self, a):
        return torch.as_tensor(a, device=self.device)

    def is_float(self, a) -> bool:
        return a.is_floating_point()

    def astype(self, a, dtype):
        return a.to(dtype)

    def empty(self, shape, dtype):
        return torch.empty(shape, dtype=dtype, device=self.device)

    def arange(self, *args):
        return torch.arange(*args, dtype=torch.int64, device=self.device)

    def take_along(self, a, index, axis):
        return torch.take_along_dim(a, index, dim=axis)

    def nonzero(self, mask):
        return torch.nonzero(mask)[:, 0]

    def contiguous(self, a):
        return a.contiguous()

    def argmax_rows(self, maps):
        return maps.argmax(dim=1)

    def gather_rows(self, flat, starts, length):
        rows = flat.as_strided((flat.numel() - length + 1, length), (1, 1))
        return rows.index_select(0, starts)

    def matmul(self, a, b):
        return a @ b

    def outer_into(self, a, b, out):
        return torch.mul(a[..., :, None], b[..., None, :], out=out)


NUMPY = NumpyBackend()


@functools.cache
def torch_backend(device: torch.device) -> TorchBackend:
    return TorchBackend(device)


def wrap(array: Any, name: str) -> tuple[Backend, Any, Callable[[Any], Any]]:
    """The backend for ``array``, the array in that backend's type, and the function that
    hands a result back in the caller's type.

    NumPy arrays and CPU tensors are shared, not copied (a tensor that needs grad is
    detached, bfloat16 is widened to float32, which NumPy lacks). Anything else is read with
    ``np.asarray``; non-numeric input is a ValueError naming the argument.
    """
    if isinstance(array, torch.Tensor):
        tensor = array.detach()
        if tensor.device.type != "cpu":
            return torch_backend(tensor.device), tensor, _identity
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.to(torch.float32)
        return NUMPY, tensor.numpy(), _to_cpu_tensor
    try:
        converted = np.asarray(array)
    except Exception as exc:  # pragma: no cover - the message is the point
        raise ValueError(f"{name}: expected a NumPy array or torch tensor, got {type(array).__name__}") from exc
    if not (np.issubdtype(converted.dtype, np.number) or converted.dtype == np.bool_):
        raise ValueError(f"{name}: expected a numeric array, got {type(array).__name__} of dtype {converted.dtype}")
    if not converted.dtype.isnative:
        converted = converted.astype(converted.dtype.newbyteorder("="))
    return NUMPY, converted, _identity


def convert(backend: Backend, array: Any, name: str) -> Any:
    """``array`` (a second argument, say) in ``backend``'s type and device."""
    other, value, _ = wrap(array, name)
    if other is backend:
        return value
    if isinstance(backend, TorchBackend):
        return torch.as_tensor(np.asarray(value) if other is NUMPY else value, device=backend.device)
    return value.cpu().numpy()


def describe(a: Any) -> str:
    """``shape (2, 3) dtype float32`` for error messages."""
    return f"shape {tuple(a.shape)} dtype {str(a.dtype).replace('torch.', '')}"


def _identity(a: Any) -> Any:
    return a


def _to_cpu_tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(a)


def _tensor_view(a: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():  # read-only input is only ever read
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)
