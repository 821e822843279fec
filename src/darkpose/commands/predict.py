"""``darkpose predict``: keypoints on your images or video, drawn.

    darkpose predict --checkpoint F [--config C] [--set k=v ...] --input IMG|DIR|VIDEO
                     [--boxes DET.json | --detector DET.onnx] --out DIR

The model, its weights and every setting (input size, convention, flip test, decode) come from
the experiment (:class:`darkpose.Predictor`: ``--config``, else the config the checkpoint
stores). Person boxes: ``--boxes``, a detection-results JSON (COCO results format; the image
files are matched to its ``image_id`` by their numeric names, as COCO's
``000000000139.jpg`` is image 139), or ``--detector``, an ONNX person detector
(:class:`darkpose.detection.OnnxPersonDetector`), or neither: the whole image is one person.

Written into ``--out``:

- ``results.json``: COCO keypoint results, one entry per person box: ``image_id`` (the
  detection file's, else the index of the image in sorted file order, or the frame index of a
  video), ``category_id`` 1, ``keypoints`` (x, y, score) x K flat, ``score`` = box score x the
  mean of the keypoint scores above ``test.in_vis_thre`` (``darkpose test``'s rescoring; no
  NMS here, so every drawn person has its entry); with ``--covariance`` also
  ``keypoint_covariance``: [var_x, cov_xy, var_y] x K flat, each keypoint's estimated error
  covariance in image px^2, null where unknown (docs/inference.md, "Uncertainty");
- ``images.json``: ``[{"id", "file_name"}]`` (a video: ``{"id", "frame", "time_s"}``);
- the images drawn (:func:`darkpose.viz.draw_poses`), under the same file names, or for a
  video ``<stem>.mp4`` at the input's frame rate, frames streamed one at a time; ``--smooth``
  filters each person track's keypoints (One-Euro, :class:`darkpose.tracking.PoseSmoother`).

No file of ``--out`` is replaced unless ``--overwrite`` (all checked before any work). An image
of a folder that cannot be read or predicted is reported on stderr and skipped, the rest is
written; other bad input (a checkpoint, a config, a video that cannot be opened, a detector of
an unknown form) is one line on stderr naming the file, exit code 2. Exit code 1: done, but
some images were skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from darkpose.commands.test import _one_line

PROG = "darkpose predict"

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
"""The files of an ``--input`` folder that are read (any letter case)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True, help="model weights (darkpose train's, or any "
                        "checkpoint of the config's model)")
    parser.add_argument("--config", type=Path, help="experiment YAML (default: the config the checkpoint stores)")
    parser.add_argument("--set", dest="overrides", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. test.flip_test=false")
    parser.add_argument("--input", type=Path, required=True, help="an image, a folder of images or a video")
    boxes = parser.add_mutually_exclusive_group()
    boxes.add_argument("--boxes", type=Path, help="person boxes: a detection-results JSON (COCO results format)")
    boxes.add_argument("--detector", type=Path, help="person boxes: an ONNX detector (docs/inference.md)")
    parser.add_argument("--out", type=Path, required=True, help="folder for results.json and the drawings")
    parser.add_argument("--score-threshold", type=float, default=0.3,
                        help="keypoints drawn from this score (default %(default)s)")
    parser.add_argument("--box-threshold", type=float, default=None,
                        help="person boxes kept from this score (default: 0.5 for --detector, "
                             "test.det_score_threshold for --boxes)")
    parser.add_argument("--draw-boxes", action="store_true", help="draw the person boxes")
    parser.add_argument("--heatmaps", action="store_true", help="overlay the heatmaps")
    parser.add_argument("--smooth", action="store_true", help="video: One-Euro smoothing per person track")
    parser.add_argument("--covariance", action="store_true",
                        help="results.json: each person's keypoint_covariance, [var_x, cov_xy, var_y] per keypoint "
                             "in image px^2, null where unknown (decode dark or dark-reference)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing files in --out")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


class _Boxes:
    """Where the person boxes of an image come from: ``(image_id, boxes, scores)`` of an image
    (boxes None: the whole image)."""

    def __init__(self, args: argparse.Namespace, cfg) -> None:
        from darkpose.detection import OnnxPersonDetector, read_detections

        self.detections = self.detector = None
        if args.boxes is not None:
            threshold = cfg.test.det_score_threshold if args.box_threshold is None else args.box_threshold
            self.detections = read_detections(args.boxes, threshold, category_id=1)
        elif args.detector is not None:
            self.detector = OnnxPersonDetector(args.detector, 0.5 if args.box_threshold is None else args.box_threshold)

    def image_id(self, path: Path, index: int) -> int:
        if self.detections is None:
            return index
        if not path.stem.isdigit():
            raise ValueError(f"{path}: no image id: with --boxes the image files are named by their "
                             "image_id (as COCO's 000000000139.jpg is image 139)")
        return int(path.stem)

    def of(self, image_id: int, bgr: np.ndarray):
        if self.detections is not None:
            found = self.detections.get(image_id)
            return (np.zeros((0, 4)), np.zeros(0)) if found is None else (found.boxes, found.scores)
        if self.detector is not None:
            found = self.detector(bgr)
            return found.boxes, found.scores
        return None, None


class _Results:
    """The results.json rows and images.json entries, gathered as the images go."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.rows: list[dict] = []
        self.images: list[dict] = []
        self.persons = 0

    def add(self, image_id: int, keypoints: np.ndarray, box_scores: np.ndarray, entry: dict,
            covariance: np.ndarray | None = None) -> None:
        from darkpose.evaluation import keypoint_results

        self.images.append({"id": image_id, **entry})
        if len(keypoints):
            self.persons += len(keypoints)
            rows = keypoint_results(keypoints, np.full(len(keypoints), image_id), box_scores,
                                    nms="none", in_vis_thre=self.cfg.test.in_vis_thre, category_id=1)
            if covariance is not None:  # nms="none": one row per person, in order
                for row, cov in zip(rows, covariance, strict=True):
                    row["keypoint_covariance"] = covariance_entries(cov)
            self.rows += rows

    def write(self, out: Path, overwrite: bool) -> None:
        from darkpose._files import write_new

        for name, data in (("results.json", self.rows), ("images.json", self.images)):
            write_new(out / name, lambda f, d=data: f.write(json.dumps(d).encode()), force=overwrite,
                      what="output file", force_hint="--overwrite")


def covariance_entries(covariance: np.ndarray) -> list[float | None]:
    """One person's covariance (K, 2, 2) as the JSON list [var_x, cov_xy, var_y] x K, plain
    floats, None (JSON null) for every number of a keypoint whose covariance is unknown."""
    flat = np.asarray(covariance, dtype=np.float64)[:, [0, 0, 1], [0, 1, 1]]
    known = np.isfinite(flat).all(axis=1)
    return [float(v) if ok else None for values, ok in zip(flat, known, strict=True) for v in values]


def _draw(predictor, bgr: np.ndarray, pred, keypoints: np.ndarray, args: argparse.Namespace) -> np.ndarray:
    from darkpose.viz import draw_poses

    return draw_poses(bgr, keypoints, predictor.metadata, score_threshold=args.score_threshold,
                      boxes=pred.boxes if args.draw_boxes else None,
                      heatmaps=pred.heatmaps if args.heatmaps else None,
                      heatmap_to_image=pred.heatmap_to_image if args.heatmaps else None)


def _progress(items, total: int | None, enabled: bool, unit: str):
    """A tqdm bar on stderr (over ``items``, or updated by hand when None)."""
    from tqdm import tqdm

    return tqdm(items, total=total, disable=not enabled, file=sys.stderr, unit=unit, desc="predict")


def _image_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(f"--input {path}: no image files ({', '.join(IMAGE_EXTENSIONS)}) in the folder")
    return files


def _check_targets(paths: list[Path], overwrite: bool) -> None:
    from darkpose._files import check_target

    for p in paths:
        check_target(p, overwrite, "output file", "--overwrite")


@dataclass
class _Photo:
    index: int
    path: Path
    image_id: int
    bgr: np.ndarray
    boxes: np.ndarray | None
    scores: np.ndarray | None


def _images(predictor, args, boxes: _Boxes, results: _Results, report: Callable[[str], None]) -> tuple[int, int]:
    """Predict and draw every image, ``test.batch_size`` images at a time (their persons
    batched together); (done, skipped)."""
    from darkpose.data import read_image

    files = _image_files(args.input)
    if args.input.is_dir() and args.out.resolve() == args.input.resolve():
        raise ValueError(f"--out {args.out}: is the --input folder; the drawings would replace the images")
    _check_targets([args.out / f.name for f in files] + [args.out / "results.json", args.out / "images.json"],
                   args.overwrite)
    bar = _progress(None, len(files), not args.no_progress, "image")
    skipped = 0

    def skip(path: Path, error: Exception) -> None:
        nonlocal skipped
        skipped += 1
        bar.write(f"{PROG}: skipped {_one_line(error)}", file=sys.stderr)
        report(str(path))

    size = predictor.config.test.batch_size
    for start in range(0, len(files), size):
        photos = []
        for index, path in enumerate(files[start : start + size], start=start):
            try:
                image_id = boxes.image_id(path, index)
                bgr = read_image(path, "bgr")
                photos.append(_Photo(index, path, image_id, bgr, *boxes.of(image_id, bgr)))
            except (ValueError, OSError) as e:
                skip(path, e)
        for photo, pred in zip(photos, _predict_all(predictor, photos, args.heatmaps), strict=True):
            try:
                if isinstance(pred, Exception):
                    raise pred
                _write_drawing(predictor, photo, pred, args)
            except (ValueError, OSError) as e:
                skip(photo.path, e)
                continue
            results.add(photo.image_id, pred.keypoints, pred.box_scores, {"file_name": photo.path.name},
                        pred.covariance)
        bar.update(min(size, len(files) - start))
    bar.close()
    return len(files) - skipped, skipped


def _predict_all(predictor, photos: list[_Photo], heatmaps: bool) -> list:
    """The predictions of the photos, batched; one at a time (an error in the place of its
    prediction) when the batch fails."""
    def predict(group: list[_Photo]):
        return predictor.predict_many([p.bgr for p in group], [p.boxes for p in group], color="bgr",
                                      return_heatmaps=heatmaps, box_scores_list=[p.scores for p in group],
                                      names=[str(p.path) for p in group])

    try:
        return predict(photos)
    except ValueError:
        out = []
        for photo in photos:
            try:
                out.append(predict([photo])[0])
            except ValueError as e:
                out.append(e)
        return out


def _write_drawing(predictor, photo: _Photo, pred, args) -> None:
    import cv2

    from darkpose._files import write_new

    ok, encoded = cv2.imencode(photo.path.suffix, _draw(predictor, photo.bgr, pred, pred.keypoints, args))
    if not ok:
        raise ValueError(f"{photo.path}: the drawing could not be encoded as {photo.path.suffix}")
    write_new(args.out / photo.path.name, lambda f: f.write(encoded.tobytes()), force=args.overwrite,
              what="output file", force_hint="--overwrite")


def _video(predictor, args, boxes: _Boxes, results: _Results) -> tuple[int, Path]:
    """Predict and draw every frame of the video, streamed; (frames, the drawn video)."""
    from darkpose.tracking import PoseSmoother
    from darkpose.video import VideoWriter, read_frames

    if boxes.detections is not None:
        raise ValueError(f"--boxes {args.boxes}: detection files are for images; give --detector for a video")
    target = args.out / f"{args.input.stem}.mp4"
    _check_targets([target, args.out / "results.json", args.out / "images.json"], args.overwrite)
    fps, count, frames = read_frames(args.input)
    first = next(frames)
    smoother = PoseSmoother() if args.smooth else None
    height, width = first.shape[:2]

    def all_frames() -> Iterator[np.ndarray]:
        yield first
        yield from frames

    with VideoWriter(target, fps, (width, height), overwrite=args.overwrite) as writer:
        for index, bgr in enumerate(_progress(all_frames(), count or None, not args.no_progress, "frame")):
            box, scores = boxes.of(index, bgr)
            pred = predictor.predict(bgr, box, color="bgr", return_heatmaps=args.heatmaps, box_scores=scores)
            keypoints = pred.keypoints
            if smoother is not None:
                keypoints = smoother.update(keypoints, pred.boxes, index / fps)
            writer.write(_draw(predictor, bgr, pred, keypoints, args))
            results.add(index, keypoints, pred.box_scores, {"frame": index, "time_s": index / fps},
                        pred.covariance)
    return writer.frames_written, target


def _run(args: argparse.Namespace) -> int:
    from darkpose.inference import Predictor
    from darkpose.video import is_video

    if not args.input.exists():
        raise FileNotFoundError(f"--input: not found: {args.input}")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ValueError("--device cuda: CUDA is not available on this machine")
    video = args.input.is_file() and is_video(args.input)
    if args.smooth and not video:
        print(f"{PROG}: warning: --smooth is for a video input; ignored for images", file=sys.stderr)
    predictor = Predictor(args.checkpoint, args.config, args.device, overrides=args.overrides,
                          covariance=args.covariance)
    if args.heatmaps and not predictor.gives_heatmaps:
        raise ValueError(f"--heatmaps: {args.checkpoint} decodes inside the graph and gives no heatmaps")
    boxes = _Boxes(args, predictor.config)
    args.out.mkdir(parents=True, exist_ok=True)
    results = _Results(predictor.config)
    skipped: list[str] = []
    if video:
        frames, target = _video(predictor, args, boxes, results)
        what = f"{frames} frames at the input's frame rate, drawn: {target}"
    else:
        done, _ = _images(predictor, args, boxes, results, skipped.append)
        what = f"{done} images ({len(skipped)} skipped), drawn into {args.out}"
    results.write(args.out, args.overwrite)
    print(f"{PROG}: {results.persons} persons in {what}; results: {args.out / 'results.json'}")
    return 0 if not skipped else 1


def run(args: argparse.Namespace) -> int:
    from darkpose.models import CheckpointError

    try:
        return _run(args)
    except (ValueError, CheckpointError, FileNotFoundError, FileExistsError, IsADirectoryError, RuntimeError) as e:
        print(f"{PROG}: {_one_line(e)}", file=sys.stderr)
        return 2
