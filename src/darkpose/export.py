"""ONNX graphs of a pose model: its heatmaps, or coordinates with the DARK decode inside.

Three things, all needing the ``export`` extra (onnx, onnxruntime), imported only here::

    export_onnx(model, cfg, "pose.onnx", with_decode=True)   # images -> coords, scores
    export_decoder("decode.onnx", (48, 64))                   # heatmaps -> coords, scores
    OnnxPoseModel("pose.onnx")(images)                        # run a pose graph

The decode in the graph is :func:`darkpose.codec.torch_decode.decode_tensor`, the code that
:func:`darkpose.codec.decode` runs on torch tensors, traced: no Python after the graph. The
flip test is :func:`darkpose.engine.evaluate.flip_test` traced (the flip pairs of the
config's metadata, the shift of its convention). Graphs are written with the TorchScript
exporter (``torch.onnx.export(..., dynamo=False)``) at opset :data:`DEFAULT_OPSET`, as one
self-contained file (no external data: models under 2 GB), never over an existing file
unless ``overwrite``. See docs/export.md.

Graph inputs and outputs (N, and K of the decoder, are dynamic)::

    images            (N, 3, H, W) float32, normalised as the model was trained (input.image_size)
    heatmap_to_image  (N, 2, 3) float32, with image_coords: the crops' heatmap-to-image affines
    heatmaps          (N, K, h, w) float32             without decode
    coords, scores    (N, K, 2), (N, K) float32        with decode: heatmap pixels, or image
                                                       pixels with image_coords
"""

from __future__ import annotations

import io
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darkpose.codec import DECODE_METHODS, gaussian_kernel
from darkpose.codec.torch_decode import decode_tensor
from darkpose.engine import evaluate

__all__ = ["DEFAULT_OPSET", "METADATA_KEYS", "OnnxPoseModel", "export_decoder", "export_onnx"]

DEFAULT_OPSET = 17
"""The ONNX opset of the graphs (onnxruntime 1.17, the extra's floor, and later run it)."""

_MAX_BYTES = 2**31  # protobuf's limit on one message: the whole file

METADATA_KEYS = (
    "darkpose_config", "darkpose_outputs", "darkpose_image_coords", "darkpose_flip_test",
    "darkpose_decode", "darkpose_blur_kernel", "darkpose_version",
)
"""The ``metadata_props`` of a pose graph: the config as JSON (``config_to_dict``; ``""`` for
the decoder alone), ``"heatmaps"`` or ``"coords"``, ``"true"``/``"false"`` for image
coordinates and flip test, the decode method and blur kernel (``""`` without decode), the
darkpose version."""


class _PoseGraph(torch.nn.Module):
    """What is traced: images (and affines) -> heatmaps, or coords and scores."""

    def __init__(self, model, flip_pairs, shift, method, blur_kernel, image_coords):
        super().__init__()
        self.model, self.flip_pairs, self.shift = model, flip_pairs, shift
        self.method, self.blur_kernel, self.image_coords = method, blur_kernel, image_coords

    def forward(self, images, heatmap_to_image=None):
        if self.flip_pairs is None:
            heatmaps = evaluate._heatmaps(self.model, images)
        else:
            heatmaps = evaluate.flip_test(self.model, images, self.flip_pairs, self.shift)
        if self.method is None:
            return heatmaps
        coords, scores = decode_tensor(heatmaps, self.method, self.blur_kernel)
        if self.image_coords:
            coords = _to_image(coords, heatmap_to_image)
        return coords, scores


def _to_image(coords: torch.Tensor, heatmap_to_image: torch.Tensor) -> torch.Tensor:
    """Heatmap coordinates (N, K, 2) mapped by affines (N, 2, 3) to image pixels (N, K, 2):
    :func:`darkpose.geometry.transform_points` in torch operations."""
    affine = heatmap_to_image.to(coords.dtype)
    return coords @ affine[:, :, :2].transpose(1, 2) + affine[:, None, :, 2]


class _DecoderGraph(torch.nn.Module):
    def __init__(self, method, blur_kernel):
        super().__init__()
        self.method, self.blur_kernel = method, blur_kernel

    def forward(self, heatmaps):
        return decode_tensor(heatmaps, self.method, self.blur_kernel)


def export_onnx(
    model: torch.nn.Module,
    cfg,
    path: str | os.PathLike[str],
    *,
    with_decode: bool = False,
    flip_test: bool = False,
    image_coords: bool = False,
    method: str | None = None,
    blur_kernel: int | None = None,
    opset: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the ONNX graph of ``model`` at the input size of ``cfg``.

    Parameters
    ----------
    model : torch.nn.Module
        A pose network (images (N, 3, H, W) -> heatmaps (N, K, h, w), or a list of stacks,
        the last one used); traced in eval mode on the CPU and given back in the mode it was.
    cfg : darkpose.config.Config
        Its config: ``input.image_size`` (the graph's H, W), ``input.convention`` (the flip
        shift), ``data.metadata`` (flip pairs), ``test.decode`` and the blur kernel (defaults
        of ``method`` and ``blur_kernel``). Stored in the file as JSON.
    path : path-like
        The ``.onnx`` file to write; its directory must exist.
    with_decode : bool
        Output coords (N, K, 2) and scores (N, K) instead of heatmaps.
    flip_test : bool
        Average the heatmaps with those of the mirrored images in the graph.
    image_coords : bool
        With ``with_decode``: a second input ``heatmap_to_image`` (N, 2, 3) float32, and
        coordinates in image pixels.
    method, blur_kernel : optional
        The decode (one of ``DECODE_METHODS``) and its kernel; default ``cfg.test.decode``
        and :func:`darkpose.engine.evaluate.blur_kernel` of ``cfg``.
    opset : int, optional
        ONNX opset, default :data:`DEFAULT_OPSET`.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        ``path``. Raises ValueError for options that do not fit together, FileExistsError
        for an existing file without ``overwrite``.
    """
    from darkpose import geometry
    from darkpose.config import config_to_dict
    from darkpose.data import load_metadata

    if image_coords and not with_decode:
        raise ValueError("image_coords: coordinates in image pixels need with_decode=True")
    method = cfg.test.decode if method is None else method
    blur_kernel = evaluate.blur_kernel(cfg) if blur_kernel is None else blur_kernel
    _check_decode(method, blur_kernel)
    _check_path(path, overwrite)
    size = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    if size >= _MAX_BYTES:
        raise ValueError(f"model: {size / 2**30:.1f} GB of weights; one self-contained ONNX file holds "
                         "less than 2 GB")
    pairs = load_metadata(cfg.data.metadata).flip_pairs if flip_test else None
    graph = _PoseGraph(model, pairs, geometry.convention_flip_shift(cfg.input.convention),
                       method if with_decode else None, blur_kernel, image_coords)
    width, height = cfg.input.image_size
    inputs = (torch.zeros(2, 3, height, width),)
    names, dynamic = ["images"], {"images": {0: "N"}}
    if image_coords:
        inputs += (torch.eye(2, 3).expand(2, 2, 3).contiguous(),)
        names.append("heatmap_to_image")
        dynamic["heatmap_to_image"] = {0: "N"}
    outputs = ["coords", "scores"] if with_decode else ["heatmaps"]
    dynamic.update({name: {0: "N"} for name in outputs})
    was_training, device = model.training, _device_of(model)
    model.eval().cpu()
    try:
        proto = _trace(graph, inputs, names, outputs, dynamic, opset)
    finally:
        model.to(device).train(was_training)
    _set_metadata(proto, {
        "darkpose_config": json.dumps(config_to_dict(cfg)),
        "darkpose_outputs": "coords" if with_decode else "heatmaps",
        "darkpose_image_coords": _flag(image_coords),
        "darkpose_flip_test": _flag(flip_test),
        "darkpose_decode": method if with_decode else "",
        "darkpose_blur_kernel": str(blur_kernel) if with_decode else "",
    })
    return _write(proto, path, overwrite)


def export_decoder(
    path: str | os.PathLike[str],
    heatmap_size: tuple[int, int],
    method: str = "dark",
    blur_kernel: int = 11,
    *,
    opset: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the decode alone as an ONNX graph: heatmaps (N, K, H, W) float32, N and K
    dynamic -> coords (N, K, 2) in heatmap pixels and scores (N, K), float32.

    ``heatmap_size`` is (W, H), width first as in the configs; ``method`` one of
    ``DECODE_METHODS``; ``blur_kernel`` odd, 1 to 101. The same results as
    :func:`darkpose.codec.decode` (NaN and +-Inf read as 0; (0, 0) where the score is <= 0).
    """
    size = _check_heatmap_size(heatmap_size)
    _check_decode(method, blur_kernel)
    _check_path(path, overwrite)
    width, height = size
    proto = _trace(_DecoderGraph(method, blur_kernel), (torch.zeros(2, 3, height, width),), ["heatmaps"],
                   ["coords", "scores"], {name: {0: "N", 1: "K"} for name in ("heatmaps", "coords", "scores")},
                   opset)
    _set_metadata(proto, {
        "darkpose_config": "", "darkpose_outputs": "coords", "darkpose_image_coords": "false",
        "darkpose_flip_test": "false", "darkpose_decode": method, "darkpose_blur_kernel": str(blur_kernel),
    })
    return _write(proto, path, overwrite)


class OnnxPoseModel:
    """A pose graph written by :func:`export_onnx`, run with onnxruntime.

    Parameters
    ----------
    path : path-like
        The ``.onnx`` file.
    providers : list of str, optional
        onnxruntime execution providers, default ``["CPUExecutionProvider"]``.

    Attributes
    ----------
    config : darkpose.config.Config or None
        The config stored in the file (``darkpose_config``), None if it has none.
    outputs : {"heatmaps", "coords"}
        What ``__call__`` returns.
    image_coords : bool
        Whether the graph takes ``heatmap_to_image`` and gives image pixels.
    flip_test : bool
        Whether the flip test is inside the graph.
    decode : str
        The decode in the graph ("" for a heatmap graph); ``blur_kernel`` (int or None) its kernel.
    input_size : (W, H)
        The image size the graph takes.

    ``model(images, heatmap_to_image=None)``: images (N, 3, H, W) float32, normalised as for
    the PyTorch model; ``heatmap_to_image`` (N, 2, 3), required exactly when
    ``image_coords``. Returns heatmaps (N, K, h, w) float32, or ``(coords, scores)`` of
    shapes (N, K, 2) and (N, K), float32 (heatmap pixels, or image pixels with
    ``image_coords``). Wrong shapes or dtypes are a ValueError naming the argument.
    """

    def __init__(self, path: str | os.PathLike[str], providers: list[str] | None = None) -> None:
        from darkpose._onnx import onnx_session
        from darkpose.config import config_from_dict

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX file {self.path} does not exist")
        self._session = onnx_session(self.path, providers)
        meta = self._session.get_modelmeta().custom_metadata_map
        if meta.get("darkpose_outputs") not in ("heatmaps", "coords"):
            raise ValueError(f"{self.path}: not a graph written by darkpose export (no metadata "
                             "darkpose_outputs)")
        inputs = self._session.get_inputs()
        if inputs[0].name != "images":
            raise ValueError(f"{self.path}: a decoder-only graph (input {inputs[0].name!r}): run it "
                             "with onnxruntime directly, it takes heatmaps")
        stored = meta.get("darkpose_config", "")
        self.config = config_from_dict(json.loads(stored), f"{self.path} (darkpose_config)") if stored else None
        self.outputs = meta["darkpose_outputs"]
        self.image_coords = meta.get("darkpose_image_coords") == "true"
        self.flip_test = meta.get("darkpose_flip_test") == "true"
        self.decode = meta.get("darkpose_decode", "")
        self.blur_kernel = int(meta["darkpose_blur_kernel"]) if meta.get("darkpose_blur_kernel") else None
        height, width = inputs[0].shape[2:]
        self.input_size = (width, height)

    def __call__(self, images: np.ndarray, heatmap_to_image: np.ndarray | None = None):
        width, height = self.input_size
        if not isinstance(images, np.ndarray) or images.dtype != np.float32 or images.shape[1:] != (3, height, width):
            raise ValueError(f"images: expected a float32 NumPy array (N, 3, {height}, {width}) for "
                             f"{self.path}, got {_describe(images)}")
        feed = {"images": np.ascontiguousarray(images)}
        if self.image_coords != (heatmap_to_image is not None):
            raise ValueError(f"heatmap_to_image: {self.path} {'takes' if self.image_coords else 'takes no'} "
                             "heatmap-to-image affines (N, 2, 3)")
        if heatmap_to_image is not None:
            affines = np.asarray(heatmap_to_image)
            if affines.shape != (len(images), 2, 3):
                raise ValueError(f"heatmap_to_image: expected ({len(images)}, 2, 3), got {_describe(affines)}")
            feed["heatmap_to_image"] = np.ascontiguousarray(affines, dtype=np.float32)
        if len(images) == 0:  # onnxruntime's Reshape takes no empty batch: the answer to one image, cut
            one = self(np.zeros((1, 3, height, width), np.float32),
                       None if heatmap_to_image is None else np.zeros((1, 2, 3), np.float32))
            return one[:0] if self.outputs == "heatmaps" else (one[0][:0], one[1][:0])
        out = self._session.run(None, feed)
        return out[0] if self.outputs == "heatmaps" else (out[0], out[1])


# ------------------------------------------------------------------------------ helpers


def _trace(graph, inputs, input_names, output_names, dynamic_axes, opset):
    """The ONNX ModelProto of ``graph`` traced on ``inputs`` (TorchScript exporter)."""
    import onnx

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the constants of the decode, and the exporter's choice, are intended
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The feature will be removed", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="__array__ implementation", category=DeprecationWarning)
        with torch.no_grad():
            torch.onnx.export(graph, inputs, buffer, dynamo=False, opset_version=opset or DEFAULT_OPSET,
                              input_names=input_names, output_names=output_names, dynamic_axes=dynamic_axes)
    return onnx.load_from_string(buffer.getvalue())


def _set_metadata(proto, values: dict[str, str]) -> None:
    from darkpose import __version__

    del proto.metadata_props[:]
    for key, value in {**values, "darkpose_version": __version__}.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def _write(proto, path, overwrite: bool) -> Path:
    from darkpose._files import write_new

    data = proto.SerializeToString()
    return write_new(path, lambda f: f.write(data), force=overwrite, what="ONNX file", force_hint="--overwrite")


def _check_path(path, overwrite: bool) -> None:
    from darkpose._files import check_target

    check_target(path, overwrite, "ONNX file", "--overwrite")


def _check_decode(method: str, blur_kernel: int) -> None:
    if method not in DECODE_METHODS:
        raise ValueError(f"method: expected one of {DECODE_METHODS}, got {method!r}")
    gaussian_kernel(blur_kernel)  # ValueError naming blur_kernel


def _check_heatmap_size(size: Any) -> tuple[int, int]:
    ok = (isinstance(size, (tuple, list)) and len(size) == 2
          and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in size))
    if not ok:
        raise ValueError(f"heatmap_size: expected (W, H), two positive integers, got {size!r}")
    return int(size[0]), int(size[1])


def _device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters(), torch.zeros(())).device


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _describe(a: Any) -> str:
    from darkpose.codec._backend import describe

    return describe(a) if isinstance(a, np.ndarray) else type(a).__name__
