"""Person boxes for top-down pose estimation: a detection-results file, or your ONNX detector.

    read_detections(path, score_threshold, category_id) -> {image_id: PersonBoxes}
    OnnxPersonDetector(path, score_threshold=0.5)       -> detector(image_bgr) -> PersonBoxes
    box_nms(boxes, scores, iou_threshold)               -> kept indices

Nothing is downloaded: the detector is a file the user exports (docs/inference.md says how).
Two output forms are read, told apart by the shape of the graph's one output:

``"grid"``: YOLOX's raw head output (``tools/export_onnx.py`` without ``--decode_in_inference``)
    (1, A, 5 + C), one row per cell of the stride 8, 16 and 32 grids of the input
    (A = sum (H/s)(W/s)), cells row by row, finest grid first; columns (dx, dy, log w,
    log h) in cells, the objectness and C class probabilities (sigmoids already applied).
    Decoded here: centre = (cell + (dx, dy)) s, size = exp(log w, log h) s, score =
    objectness x probability of the person class; then NMS (:func:`box_nms`).
``"boxes"``: a graph with NMS inside, (N, 5) or (N, 6), or (1, N, 5 | 6): rows (x1, y1, x2, y2,
    score[, class]) in input pixels. Rows of another class than the person's are dropped.

The image is letterboxed into the input as YOLOX does (scaled by r = min(W_in / w, H_in / h),
placed at the top left, the rest grey 114), channels B, G, R in 0..255 float32 (``color="rgb"``
for a graph trained on RGB); the boxes are mapped back by 1 / r.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

__all__ = ["GRID_STRIDES", "OnnxPersonDetector", "PersonBoxes", "box_nms", "letterbox", "read_detections"]

logger = logging.getLogger(__name__)

GRID_STRIDES = (8, 16, 32)
"""Strides of the YOLOX grids, in the order of the rows of its output."""

LETTERBOX_FILL = 114
"""Grey of the letterbox border (YOLOX's)."""


@dataclass(frozen=True)
class PersonBoxes:
    """Person boxes of one image.

    boxes : (P, 4) float64, (x, y, w, h) in image pixels
    scores : (P,) float64
    """

    boxes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def _person_boxes(boxes, scores) -> PersonBoxes:
    return PersonBoxes(np.asarray(boxes, dtype=np.float64).reshape(-1, 4),
                       np.asarray(scores, dtype=np.float64).reshape(-1))


def read_detections(
    path: str | os.PathLike, score_threshold: float = 0.0, category_id: int | None = 1
) -> dict[int, PersonBoxes]:
    """The person boxes of a detection-results JSON (COCO results format), per image id.

    A list of ``{"image_id": int, "category_id": int, "bbox": [x, y, w, h], "score": float}``
    (``category_id`` optional). Kept: entries of ``category_id`` (None: any; entries
    without the field are kept) with ``score >= score_threshold``; boxes of zero or negative
    width or height are left out with a count in the log. Per image, the boxes in file order.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not valid JSON, not a list, or an entry with a missing or wrong field (a box that is
        not four finite numbers, a score that is not a finite number, an id that is not an
        integer), naming the file and the entry's index.
    """
    from darkpose.data.coco import read_detection_file

    image_ids, all_boxes, all_scores, low = read_detection_file(path, category_id, score_threshold)
    sized = (all_boxes[:, 2] > 0) & (all_boxes[:, 3] > 0)
    boxes: dict[int, list[np.ndarray]] = {}
    scores: dict[int, list[float]] = {}
    for image_id, bbox, score in zip(image_ids[sized].tolist(), all_boxes[sized], all_scores[sized].tolist(),
                                     strict=True):
        boxes.setdefault(image_id, []).append(bbox)
        scores.setdefault(image_id, []).append(score)
    if not sized.all():
        logger.warning("%s: left out %d detections with a zero-size box", path, int((~sized).sum()))
    logger.info("%s: %d detections below score %g left out", path, low, score_threshold)
    return {i: _person_boxes(boxes[i], scores[i]) for i in boxes}


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS of boxes: keep the best, drop those with IoU > ``iou_threshold``, repeat.

    boxes (N, 4) (x, y, w, h), scores (N,) -> kept indices (M,), best first
    """
    from darkpose.evaluation.nms import greedy_nms
    from darkpose.tracking import box_iou

    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return greedy_nms(box_iou(boxes, boxes), scores, iou_threshold)


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """The image scaled to fit (W, H) = ``size`` at the top left, the rest
    :data:`LETTERBOX_FILL`: ((H, W, C) uint8, the scale r). Input pixel = image pixel x r."""
    width, height = size
    r = min(width / image.shape[1], height / image.shape[0])
    w, h = max(1, round(image.shape[1] * r)), max(1, round(image.shape[0] * r))
    out = np.full((height, width, image.shape[2]), LETTERBOX_FILL, dtype=np.uint8)
    out[:h, :w] = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
    return out, r


def grid_cells(size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """The cells of the YOLOX grids of an input of (W, H) = ``size``, in output row order:
    (A, 2) cell (x, y) and (A,) stride of each."""
    width, height = size
    cells, strides = [], []
    for s in GRID_STRIDES:
        ys, xs = np.mgrid[0 : height // s, 0 : width // s]
        cells.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        strides.append(np.full(xs.size, s))
    return np.concatenate(cells).astype(np.float64), np.concatenate(strides).astype(np.float64)


class OnnxPersonDetector:
    """A person detector from an ONNX file, run through onnxruntime.

    Parameters
    ----------
    path : the .onnx file (one image input (1, 3, H, W) float32, one output of a form in the
        module docstring)
    score_threshold : keep boxes with score >= this
    person_class : index of the person class (COCO-trained YOLOX: 0)
    nms_threshold : IoU above which a box is suppressed by a better one ("grid" form)
    input_size : (W, H) of the input; required when the graph's input size is dynamic
    color : {"bgr", "rgb"}, the channel order the graph takes
    providers : onnxruntime execution providers (default CPU)

    Attributes
    ----------
    form : {"grid", "boxes"}, found from the output of one run on a blank image at load
    input_size : (W, H)

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        Not a readable ONNX model, no input size, or an output of an unknown form: the
        message names the file and the shapes found.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        score_threshold: float = 0.5,
        person_class: int = 0,
        nms_threshold: float = 0.45,
        input_size: tuple[int, int] | None = None,
        *,
        color: str = "bgr",
        providers: tuple[str, ...] = ("CPUExecutionProvider",),
    ) -> None:
        from darkpose._onnx import onnx_session
        from darkpose.data.image import check_color

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"detector file not found: {self.path}")
        self.score_threshold = float(score_threshold)
        self.person_class = int(person_class)
        self.nms_threshold = float(nms_threshold)
        self.color = check_color(color)
        self.session = onnx_session(self.path, providers)
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = inputs[0].shape
        if len(inputs) != 1 or len(shape) != 4:
            raise ValueError(f"{self.path}: expected one image input (1, 3, H, W), got "
                             f"{[tuple(i.shape) for i in inputs]}")
        if input_size is None:
            if not all(isinstance(v, int) for v in shape[2:]):
                raise ValueError(f"{self.path}: the input size is dynamic {tuple(shape)}: give input_size=(W, H)")
            input_size = (shape[3], shape[2])
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self._input = inputs[0].name
        if len(outputs) != 1:
            raise self._unknown([tuple(o.shape) for o in outputs])
        blank = np.full((self.input_size[1], self.input_size[0], 3), LETTERBOX_FILL, np.uint8)
        self.form = self._form(self._run(blank).shape)

    def _unknown(self, shapes) -> ValueError:
        w, h = self.input_size
        cells = len(grid_cells(self.input_size)[1])
        return ValueError(
            f"{self.path}: unknown detector output form: output shapes {shapes}; expected one output, "
            f"YOLOX raw grid (1, {cells}, 5 + classes) for the {w}x{h} input (strides 8, 16, 32), "
            f"or boxes after NMS (N, 5) / (N, 6) / (1, N, 5 | 6): x1, y1, x2, y2, score[, class]"
        )

    def _form(self, shape: tuple[int, ...]) -> str:
        cells = len(grid_cells(self.input_size)[1])
        if len(shape) == 3 and shape[0] == 1 and shape[1] == cells and shape[2] > 5 + self.person_class:
            return "grid"
        if (len(shape) == 2 or (len(shape) == 3 and shape[0] == 1)) and shape[-1] in (5, 6):
            return "boxes"
        raise self._unknown([tuple(shape)])

    def _run(self, letterboxed: np.ndarray) -> np.ndarray:
        x = letterboxed if self.color == "bgr" else letterboxed[:, :, ::-1]
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype=np.float32)
        return np.asarray(self.session.run(None, {self._input: x})[0])

    def __call__(self, image: np.ndarray) -> PersonBoxes:
        """The person boxes of a BGR image (H, W, 3) uint8, best first ("grid") or in the
        graph's order ("boxes")."""
        from darkpose.data.crop import check_image

        check_image(image)
        padded, r = letterbox(image, self.input_size)
        out = self._run(padded)
        if self.form == "grid":
            return self._decode_grid(out[0], r)
        rows = out.reshape(-1, out.shape[-1]).astype(np.float64)
        keep = rows[:, 4] >= self.score_threshold
        if rows.shape[1] == 6:
            keep &= np.round(rows[:, 5]) == self.person_class
        rows = rows[keep & np.isfinite(rows).all(axis=1)]
        xywh = np.concatenate([rows[:, :2], rows[:, 2:4] - rows[:, :2]], axis=1) / r
        valid = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
        return _person_boxes(xywh[valid], rows[valid, 4])

    def _decode_grid(self, out: np.ndarray, r: float) -> PersonBoxes:
        """(A, 5 + C) raw grid rows -> the NMS-ed person boxes in image pixels."""
        cells, strides = grid_cells(self.input_size)
        out = out.astype(np.float64)
        scores = out[:, 4] * out[:, 5 + self.person_class]
        keep = np.flatnonzero(scores >= self.score_threshold)
        centre = (cells[keep] + out[keep, :2]) * strides[keep, None]
        with np.errstate(over="ignore"):
            size = np.exp(out[keep, 2:4]) * strides[keep, None]
        xywh = np.concatenate([centre - size / 2, size], axis=1) / r
        scores = scores[keep]
        ok = np.isfinite(xywh).all(axis=1) & np.isfinite(scores)
        xywh, scores = xywh[ok], scores[ok]
        kept = box_nms(xywh, scores, self.nms_threshold)
        return _person_boxes(xywh[kept], scores[kept])
