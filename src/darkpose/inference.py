"""Keypoints of the persons in your own images: :class:`Predictor`.

    Predictor(checkpoint, config=None, device="cpu")           a model and its experiment config
    Predictor(..., covariance=True)                            also PosePrediction.covariance (image px^2)
    Predictor.from_model(model, config)                        the same from a model in memory
    predictor.predict(image, boxes=None)                       -> PosePrediction
    predictor.predict_many(images, boxes_list)                 -> [PosePrediction, ...]

One path with ``darkpose test``: box -> centre and scale
(:func:`darkpose.geometry.boxes_to_center_scale` with the config's convention and input aspect),
the crop (:func:`darkpose.engine.evaluate.crop_for_test`), the heatmaps with or without flip
test (:func:`~darkpose.engine.evaluate.crop_heatmaps`) and the decode with the recovery to
image pixels (:func:`~darkpose.engine.evaluate.heatmaps_to_keypoints`) are the functions
``darkpose test`` runs, with the settings of the same config tree (``input``, ``test``,
``data.metadata``, ``data.color``). Persons of one call, and of several images, go through the
model in batches of ``cfg.test.batch_size``; the decode runs on the model's device.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from darkpose import geometry
from darkpose.config import Config, apply_overrides, config_from_dict, load_config, transform_config, validate_config
from darkpose.engine.evaluate import crop_for_test, crop_heatmaps, heatmaps_to_keypoints

__all__ = [
    "BOX_FORMATS",
    "PosePrediction",
    "Predictor",
    "as_bgr_image",
    "as_xywh_boxes",
    "experiment_config",
    "load_weights",
]

BOX_FORMATS = ("xywh", "xyxy")
"""``"xywh"``: (x, y, width, height), COCO's ``bbox``; ``"xyxy"``: (x1, y1, x2, y2) with
width x2 - x1 and height y2 - y1."""

ImageLike = str | os.PathLike | np.ndarray


@dataclass(frozen=True)
class PosePrediction:
    """The keypoints of the persons of one image.

    keypoints : (P, K, 3) float64, (x, y) in image pixels and the heatmap score
    boxes : (P, 4) float64, the person boxes used, (x, y, w, h) in image pixels
    box_scores : (P,) float64, the boxes' scores (1 where none was given)
    heatmap_to_image : (P, 2, 3) float64, each crop's affine from heatmap to image pixels
    heatmaps : (P, K, h, w) float32 NumPy array (flip-averaged when flip test is on), or
        None unless asked for
    covariance : (P, K, 2, 2) float32, the estimated covariance of each keypoint's error in
        image px^2, [[var x, cov], [cov, var y]] (infinite variances and 0 covariance where
        unknown; docs/inference.md, "Uncertainty"), or None unless the predictor was built
        with ``covariance=True``
    """

    keypoints: np.ndarray
    boxes: np.ndarray
    box_scores: np.ndarray
    heatmap_to_image: np.ndarray
    heatmaps: np.ndarray | None = None
    covariance: np.ndarray | None = None


# -- the experiment: config and weights ------------------------------------------------


def experiment_config(
    checkpoint: str | os.PathLike | None,
    config: Config | str | os.PathLike | None = None,
    overrides: Sequence[str] = (),
    *,
    hint: str = "Predictor(checkpoint, config=YAML)",
) -> Config:
    """The config of an experiment, ``--set`` overrides applied and validated.

    ``config``: a :class:`~darkpose.config.Config`, or an experiment YAML (ours or an official
    yacs file, :func:`darkpose.config.load_config`), or None: the config a training checkpoint
    stores (``meta["config"]`` of ``checkpoint``, as ``darkpose train`` writes it); ``hint``
    ends the error when it stores none (how to give the experiment instead).

    Raises
    ------
    ValueError
        No config given and the checkpoint stores none (naming the file); a
        :class:`~darkpose.config.ConfigError` for a bad key or value.
    """
    overrides = list(overrides)
    if isinstance(config, Config):
        cfg = apply_overrides(config, overrides) if overrides else config
        validate_config(cfg, f"config (with --set {' '.join(overrides)})" if overrides else "config")
        return cfg
    if config is not None:
        return load_config(config, overrides)
    from darkpose.models import read_checkpoint

    if checkpoint is None:
        raise ValueError("no config: give an experiment YAML, or a checkpoint written by darkpose "
                         "train (it stores its config)")
    stored = read_checkpoint(checkpoint).meta.get("config")
    if not isinstance(stored, dict):
        raise ValueError(f"{checkpoint}: the checkpoint stores no config (meta['config']); give the "
                         f"experiment: {hint}")
    where = f"{checkpoint} (stored config)"
    cfg = apply_overrides(config_from_dict(stored, where), overrides)
    validate_config(cfg, f"{where} with --set {' '.join(overrides)}" if overrides else where)
    return cfg


def load_weights(model: torch.nn.Module, path: str | os.PathLike, cfg: Config, num_joints: int) -> None:
    """:func:`darkpose.models.load_checkpoint` (strict); a mismatch (another model, another
    number of keypoints than ``data.metadata`` has) is a ValueError in one line naming the
    file and a tensor of another shape."""
    from darkpose.models import CheckpointMismatchError, load_checkpoint

    try:
        load_checkpoint(model, path)
    except CheckpointMismatchError as e:
        r = e.report
        parts = [f"{len(v)} {what}" for v, what in ((r.missing, "missing"), (r.unexpected, "unexpected"),
                                                     (r.mismatched, "of another shape")) if v]
        example = (f"; e.g. {r.mismatched[0][0]}: file {list(r.mismatched[0][1])}, model "
                   f"{list(r.mismatched[0][2])}" if r.mismatched else "")
        raise ValueError(
            f"{path}: not a checkpoint of model.name={cfg.model.name!r} with {num_joints} keypoints "
            f"(data.metadata={cfg.data.metadata!r}): tensors {', '.join(parts) or 'unmatched'}{example}"
        ) from None


# -- the inputs ------------------------------------------------------------------------


def as_bgr_image(image: ImageLike, color: str = "rgb", name: str = "image") -> np.ndarray:
    """An image file or array as the (H, W, 3) uint8 BGR array the crop takes.

    A path is decoded by :func:`darkpose.data.read_image` (OpenCV: grey, RGBA and 16-bit
    files come out as 8-bit BGR). An array is read in ``color`` order ("rgb" or "bgr"):
    (H, W, 3) as is; grey (H, W) or (H, W, 1) repeated to three channels; (H, W, 4) with the
    alpha channel dropped (not composited); uint16 values divided by 256 (``>> 8``, as
    OpenCV reads a 16-bit file). ``name`` labels the errors.

    Raises
    ------
    FileNotFoundError, OSError, ValueError
        A file that is missing, unreadable or not an image (naming it).
    TypeError
        Not a path or a NumPy array, or an array of another dtype than uint8 or uint16.
    ValueError
        An empty array, or one of another shape.
    """
    from darkpose.data import read_image
    from darkpose.data.image import check_color

    check_color(color)
    if isinstance(image, (str, os.PathLike)):
        return read_image(image, "bgr")
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name}: expected a file path or a NumPy array, got {type(image).__name__}")
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.dtype != np.uint8:
        raise TypeError(f"{name}: expected a uint8 (or uint16) array, got {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    channels = 1 if image.ndim == 2 else image.shape[2] if image.ndim == 3 else 0
    if channels not in (1, 3, 4) or 0 in image.shape:
        raise ValueError(f"{name}: expected a non-empty (H, W, 3) array (or grey (H, W), (H, W, 1), "
                         f"or (H, W, 4) with alpha), got shape {image.shape}")
    if channels == 1:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if channels == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if color == "rgb" else cv2.COLOR_BGRA2BGR)
    return cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if color == "rgb" else np.ascontiguousarray(image)


def as_xywh_boxes(boxes, box_format: str = "xywh", name: str = "boxes") -> np.ndarray:
    """Person boxes as a (P, 4) float64 array of (x, y, w, h).

    ``boxes``: (P, 4) array-like in ``box_format`` (:data:`BOX_FORMATS`), or an empty list.
    A box partly or wholly outside the image is kept (its crop is black outside the photo,
    as in ``darkpose test``).

    Raises
    ------
    ValueError
        Another shape, a value that is not finite or beyond +-2**24 px, or a box of zero or
        negative width or height (naming the box's row).
    """
    if box_format not in BOX_FORMATS:
        raise ValueError(f"box_format: expected one of {BOX_FORMATS}, got {box_format!r}")
    try:
        arr = np.array(boxes, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a (P, 4) array of numbers, got {boxes!r:.80}") from None
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{name}: expected a (P, 4) array ({box_format}), got shape {arr.shape}")
    bad = ~(np.abs(arr) <= geometry.MAX_COORDINATE).all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}]: expected finite coordinates within +-2**24 px, got {arr[i].tolist()}")
    if box_format == "xyxy":
        arr[:, 2:] -= arr[:, :2]
    small = (arr[:, 2] <= 0) | (arr[:, 3] <= 0)
    if small.any():
        i = int(np.flatnonzero(small)[0])
        raise ValueError(f"{name}[{i}]: zero-size box (width {arr[i, 2]:g}, height {arr[i, 3]:g} "
                         f"after {box_format}); expected both > 0")
    return arr


def _box_scores(scores, count: int, name: str) -> np.ndarray:
    if scores is None:
        return np.ones(count)
    arr = np.asarray(scores, dtype=np.float64).reshape(-1)
    if arr.size != count or not np.isfinite(arr).all():
        raise ValueError(f"{name}: expected {count} finite scores, one per box, got {np.asarray(scores)!r:.80}")
    return arr


# -- the predictor ---------------------------------------------------------------------


@dataclass
class _Person:
    image: int
    pixels: np.ndarray
    heatmap_to_image: np.ndarray


class Predictor:
    """A pose model ready for images: keypoints of person boxes in image pixels.

    Parameters
    ----------
    checkpoint : path
        Weights of the config's model (a darkpose checkpoint, an official one, .safetensors),
        or a ``.onnx`` graph of ``darkpose export`` (run through onnxruntime; its stored
        config is the default, and a graph with the decode inside fixes flip test and decode).
    config : Config, path or None
        The experiment (:func:`experiment_config`); None: the config a training checkpoint
        stores.
    device : str or torch.device
    flip_test : bool, optional
        Override ``test.flip_test``.
    decode : str, optional
        Override ``test.decode`` (:data:`darkpose.codec.DECODE_METHODS`).
    overrides : sequence of "key=value"
        Any other config overrides (``--set``), e.g. ``test.batch_size=8``.
    covariance : bool
        Also give each keypoint's error covariance in image pixels
        (:attr:`PosePrediction.covariance`), from the same decode. A setting of the
        predictor, like ``decode``, which it needs to be "dark" or "dark-reference"; not for
        an ONNX graph with the decode inside (it gives no heatmaps).

    Attributes
    ----------
    config : Config
    metadata : KeypointMetadata
        Of ``config.data.metadata``: K keypoints, flip pairs, skeleton.
    model : torch.nn.Module, in eval mode on ``device``
    device : torch.device
    transform : TransformConfig of the test-time crop (``transform_config(config, "none")``)

    Raises
    ------
    ValueError
        A checkpoint of another model or another number of keypoints than the config's
        metadata (naming the file); a bad config; ``covariance=True`` with another decode
        than "dark"/"dark-reference" or with a graph that decodes inside.
    FileNotFoundError
        No checkpoint file.
    """

    def __init__(
        self,
        checkpoint: str | os.PathLike,
        config: Config | str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        *,
        flip_test: bool | None = None,
        decode: str | None = None,
        overrides: Sequence[str] = (),
        covariance: bool = False,
    ) -> None:
        from darkpose.data import load_metadata
        from darkpose.engine.model import build_model_from_config

        self._onnx = None
        if Path(checkpoint).suffix.lower() == ".onnx":
            self._setup_onnx(Path(checkpoint), config, device, flip_test, decode, overrides, covariance)
            return
        cfg = experiment_config(checkpoint, config, _overrides(flip_test, decode, overrides))
        _check_covariance(covariance, cfg)
        metadata = load_metadata(cfg.data.metadata)
        model = build_model_from_config(cfg, metadata.num_keypoints)
        load_weights(model, checkpoint, cfg, metadata.num_keypoints)
        self._setup(model, cfg, device, covariance)

    def _setup_onnx(self, path: Path, config, device, flip_test, decode, overrides, covariance) -> None:
        """A graph of ``darkpose export`` (:class:`darkpose.export.OnnxPoseModel`) in place
        of the model. Its config is ``config`` or the one the file stores. A heatmap graph
        runs where the model would (flip test around it unless the graph has it inside); a
        coordinate graph decodes inside: ``config.test`` then records the graph's flip test,
        decode and blur kernel (``flip_test``/``decode`` asked otherwise are an error naming
        the file)."""
        from darkpose.export import OnnxPoseModel

        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if torch.device(device).type == "cuda" else None
        onnx = OnnxPoseModel(path, providers=providers)
        if covariance and onnx.outputs == "coords":
            raise ValueError(f"{path}: covariance=True needs the heatmaps, and this graph decodes inside and "
                             "outputs coordinates; export a heatmaps graph (darkpose export without the decode)")
        if config is None:
            if onnx.config is None:
                raise ValueError(f"{path}: the graph stores no config; give the experiment: "
                                 "Predictor(path, config=YAML)")
            config = onnx.config
        inside = {}  # what the graph does whatever the config says
        if onnx.flip_test or onnx.outputs == "coords":
            inside["flip_test"] = onnx.flip_test
        if onnx.outputs == "coords":
            inside["decode"] = onnx.decode
        for name, asked in (("flip_test", flip_test), ("decode", decode)):
            if name in inside and asked is not None and asked != inside[name]:
                raise ValueError(f"{path}: the graph has {name}={inside[name]!r} inside, {name}={asked!r} "
                                 "was asked; export it again with the setting wanted")
        extra = [f"test.blur_kernel={onnx.blur_kernel}"] if onnx.outputs == "coords" and onnx.blur_kernel else []
        cfg = experiment_config(None, config, _overrides(inside.get("flip_test", flip_test),
                                                         inside.get("decode", decode), [*overrides, *extra]))
        if tuple(cfg.input.image_size) != tuple(onnx.input_size):
            raise ValueError(f"{path}: the graph takes {onnx.input_size[0]}x{onnx.input_size[1]} (W x H) "
                             f"images, input.image_size is {tuple(cfg.input.image_size)}")
        _check_covariance(covariance, cfg)
        self._onnx = onnx
        self._setup(_OnnxHeatmaps(onnx), cfg, "cpu", covariance)
        if onnx.flip_test:  # flipped inside the graph, not again around it
            self._heatmap_config = apply_overrides(cfg, ["test.flip_test=false"])

    @classmethod
    def from_model(
        cls,
        model: torch.nn.Module,
        config: Config | str | os.PathLike,
        device: str | torch.device = "cpu",
        *,
        flip_test: bool | None = None,
        decode: str | None = None,
        overrides: Sequence[str] = (),
        covariance: bool = False,
    ) -> Predictor:
        """A predictor of a model in memory (put in eval mode and moved to ``device``: the
        caller's module itself, not a copy) with the experiment ``config``."""
        self = cls.__new__(cls)
        self._onnx = None
        cfg = experiment_config(None, config, _overrides(flip_test, decode, overrides))
        _check_covariance(covariance, cfg)
        self._setup(model, cfg, device, covariance)
        return self

    def _setup(self, model: torch.nn.Module, cfg: Config, device, covariance: bool = False) -> None:
        from darkpose.data import load_metadata

        self.config = cfg
        self.metadata = load_metadata(cfg.data.metadata)
        self.device = torch.device(device)
        self.model = model.to(self.device).eval() if isinstance(model, torch.nn.Module) else model
        self._heatmap_config = cfg
        self.covariance = covariance
        self.transform = transform_config(cfg, "none")
        width, height = self.transform.image_size
        self._aspect = width / height

    @property
    def gives_heatmaps(self) -> bool:
        """Whether ``return_heatmaps=True`` works (not for an ONNX graph with the decode inside)."""
        return self._onnx is None or self._onnx.outputs == "heatmaps"

    def predict(
        self,
        image: ImageLike,
        boxes=None,
        box_format: str = "xywh",
        color: str = "rgb",
        return_heatmaps: bool = False,
        *,
        box_scores=None,
    ) -> PosePrediction:
        """The keypoints of the persons in ``boxes`` of one image.

        Parameters
        ----------
        image : path, or (H, W, 3) uint8 array in ``color`` order (see :func:`as_bgr_image`
            for grey, RGBA and 16-bit images)
        boxes : (P, 4) array-like in ``box_format``, or None: the whole image is one box
            (x, y, w, h) = (0, 0, W, H). An empty list gives P = 0.
        box_format : {"xywh", "xyxy"}
        color : {"rgb", "bgr"}, the channel order of an array
        return_heatmaps : also return the heatmaps
        box_scores : (P,) scores of the boxes (default ones), passed through

        Returns
        -------
        PosePrediction
        """
        return self.predict_many([image], [boxes], box_format=box_format, color=color,
                                 return_heatmaps=return_heatmaps,
                                 box_scores_list=None if box_scores is None else [box_scores])[0]

    def predict_many(
        self,
        images: Sequence[ImageLike],
        boxes_list: Sequence[Any] | None = None,
        *,
        box_format: str = "xywh",
        color: str = "rgb",
        return_heatmaps: bool = False,
        box_scores_list: Sequence[Any] | None = None,
        names: Sequence[str] | None = None,
    ) -> list[PosePrediction]:
        """:meth:`predict` of several images, their persons batched together through the
        model in batches of ``config.test.batch_size``. ``boxes_list``: one entry per image
        (None: the whole image), or None for whole images throughout. Errors name the image:
        ``names[i]``, else its path, else ``images[i]``."""
        n = len(images)
        boxes_list = [None] * n if boxes_list is None else list(boxes_list)
        scores_list = [None] * n if box_scores_list is None else list(box_scores_list)
        if len(boxes_list) != n or len(scores_list) != n:
            raise ValueError(f"boxes_list and box_scores_list: expected one entry per image ({n}), got "
                             f"{len(boxes_list)} and {len(scores_list)}")
        used_boxes: list[np.ndarray] = []
        used_scores: list[np.ndarray] = []

        def persons() -> Iterator[_Person]:
            for i, (image, boxes, scores) in enumerate(zip(images, boxes_list, scores_list, strict=True)):
                name = (names[i] if names is not None else str(image) if isinstance(image, (str, os.PathLike))
                        else f"images[{i}]")
                bgr = as_bgr_image(image, color, name)
                if boxes is None:
                    boxes = [[0.0, 0.0, bgr.shape[1], bgr.shape[0]]]
                    box_format_i = "xywh"
                else:
                    box_format_i = box_format
                xywh = as_xywh_boxes(boxes, box_format_i, f"{name}: boxes")
                used_boxes.append(xywh)
                used_scores.append(_box_scores(scores, len(xywh), f"{name}: box_scores"))
                pixels, affines = self.crops(bgr, xywh, name)
                for j in range(len(xywh)):
                    yield _Person(i, pixels[j], affines[j])

        keypoints, affines, heatmaps, covariance, owners = self._run(persons(), return_heatmaps)
        out = []
        for i in range(n):
            mine = owners == i
            out.append(PosePrediction(
                keypoints=keypoints[mine], boxes=used_boxes[i], box_scores=used_scores[i],
                heatmap_to_image=affines[mine], heatmaps=heatmaps[mine] if return_heatmaps else None,
                covariance=covariance[mine] if self.covariance else None,
            ))
        return out

    def crops(self, image_bgr: np.ndarray, boxes: np.ndarray, name: str = "image") -> tuple[np.ndarray, np.ndarray]:
        """The test-time crops of the persons in ``boxes`` (P, 4) xywh of a (H, W, 3) uint8
        BGR image: pixels (P, 3, H_in, W_in) float32 and heatmap_to_image (P, 2, 3)."""
        cfg = self.config
        centers, scales = geometry.boxes_to_center_scale(boxes, self._aspect, convention=cfg.input.convention)
        pixels, affines = [], []
        for j, (c, s) in enumerate(zip(centers, scales, strict=True)):
            try:
                crop = crop_for_test(image_bgr, c, s, self.transform, cfg.data.color)
            except ValueError as e:
                raise ValueError(f"{name}: boxes[{j}]: {e}") from None
            pixels.append(crop.pixels)
            affines.append(crop.heatmap_to_image)
        w, h = self.transform.image_size
        if not pixels:
            return np.zeros((0, 3, h, w), np.float32), np.zeros((0, 2, 3))
        return np.stack(pixels), np.stack(affines)

    def _run(self, persons: Iterable[_Person], return_heatmaps: bool):
        """Batches of ``test.batch_size`` crops through the model and the decode:
        keypoints (N, K, 3), heatmap_to_image (N, 2, 3), heatmaps (N, K, h, w) or None,
        covariance (N, K, 2, 2) or None, owners (N,) image indices."""
        size = self.config.test.batch_size
        keypoints, affines, heatmaps, covariances, owners = [], [], [], [], []
        batch: list[_Person] = []

        def flush() -> None:
            affine = np.stack([p.heatmap_to_image for p in batch])
            kp, hm, cov = self._run_batch(np.stack([p.pixels for p in batch]), affine, return_heatmaps)
            keypoints.append(kp)
            affines.append(affine)
            heatmaps.append(hm)
            covariances.append(cov)
            owners.extend(p.image for p in batch)
            batch.clear()

        for person in persons:
            batch.append(person)
            if len(batch) == size:
                flush()
        if batch:
            flush()
        k = self.metadata.num_keypoints
        if not keypoints:
            w, h = self.transform.heatmap_size
            return (np.zeros((0, k, 3)), np.zeros((0, 2, 3)), np.zeros((0, k, h, w), np.float32),
                    np.zeros((0, k, 2, 2), np.float32), np.zeros(0, dtype=np.int64))
        hm = np.concatenate(heatmaps) if return_heatmaps else None
        cov = np.concatenate(covariances) if self.covariance else None
        return np.concatenate(keypoints), np.concatenate(affines), hm, cov, np.asarray(owners, dtype=np.int64)

    def run_crops(
        self, pixels: np.ndarray, heatmap_to_image: np.ndarray, return_heatmaps: bool = False
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """One batch of test-time crops through the model and the decode (what
        :meth:`predict_many` does per batch; ``darkpose bench predict`` times it).

        pixels (N, 3, H, W) float32, heatmap_to_image (N, 2, 3) -> keypoints (N, K, 3)
        float64 in image pixels, heatmaps (N, K, h, w) float32 NumPy or None
        """
        return self._run_batch(pixels, heatmap_to_image, return_heatmaps)[:2]

    def _run_batch(self, pixels: np.ndarray, heatmap_to_image: np.ndarray, return_heatmaps: bool):
        """:meth:`run_crops` and the covariance (N, K, 2, 2) float32 image px^2, or None
        unless ``self.covariance``."""
        onnx = self._onnx
        covariance = None
        if onnx is not None and onnx.outputs == "coords":
            if return_heatmaps:
                raise ValueError(f"{onnx.path}: a graph with the decode inside gives no heatmaps")
            coords, scores = onnx(pixels, heatmap_to_image if onnx.image_coords else None)
            heatmaps = None
            keypoints = np.empty((*scores.shape, 3))
            keypoints[..., :2] = coords if onnx.image_coords else geometry.transform_points(coords, heatmap_to_image)
            keypoints[..., 2] = scores
        else:
            images = torch.from_numpy(pixels).to(self.device)
            hm = crop_heatmaps(self.model, images, self._heatmap_config, self.metadata.flip_pairs)
            if self.covariance:
                keypoints, covariance = heatmaps_to_keypoints(hm, heatmap_to_image, self.config,
                                                              return_covariance=True)
            else:
                keypoints = heatmaps_to_keypoints(hm, heatmap_to_image, self.config)
            heatmaps = hm.float().cpu().numpy() if return_heatmaps else None
        k = self.metadata.num_keypoints
        if keypoints.shape[1] != k:
            source = onnx.path if onnx is not None else "the model"
            raise ValueError(f"{source}: gives {keypoints.shape[1]} keypoints, data.metadata="
                             f"{self.config.data.metadata!r} has {k}")
        return keypoints, heatmaps, covariance


def _check_covariance(covariance, cfg: Config) -> None:
    if not isinstance(covariance, bool):
        raise ValueError(f"covariance: expected True or False, got {covariance!r}")
    if covariance and cfg.test.decode not in ("dark", "dark-reference"):
        raise ValueError(f"covariance=True: needs test.decode 'dark' or 'dark-reference' (the Gaussian model "
                         f"of the peak), got {cfg.test.decode!r}")


class _OnnxHeatmaps:
    """An exported heatmap graph as the model callable of the test path: a torch batch in,
    the graph's heatmaps as a torch tensor out."""

    def __init__(self, onnx) -> None:
        self.onnx = onnx

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.onnx(np.ascontiguousarray(images.cpu().numpy())))


def _overrides(flip_test: bool | None, decode: str | None, overrides: Sequence[str]) -> list[str]:
    out = list(overrides)
    if flip_test is not None:
        out.append(f"test.flip_test={'true' if flip_test else 'false'}")
    if decode is not None:
        out.append(f"test.decode={decode}")
    return out
