"""Test time: the crop of one person, flip test, the prediction loop and the metric table.

The same code serves ``darkpose test``, validation during training, the oracle
(``darkpose bench oracle``) and :class:`darkpose.Predictor` (``darkpose predict``)::

    crop_person(image, center, scale, size, convention) -> Crop (pixels, affines)
    crop_for_test(image, center, scale, t, color)       -> Crop at the config's sizes
    flip_test(model, images, flip_pairs, shift)          -> heatmaps (N, K, h, w)
    crop_heatmaps(model, images, cfg, flip_pairs)        -> heatmaps, flip test or not
    heatmaps_to_keypoints(heatmaps, affines, cfg)        -> keypoints (N, K, 3), image pixels
        (return_covariance=True: and covariance (N, K, 2, 2), image px^2)
    predict(model, dataset, cfg, device=...)             -> Predictions (image pixels)
    evaluate(model, cfg, device=...)                     -> {"AP": ..., ...} or PCKh rows

Every setting comes from the config tree (:class:`darkpose.config.Config`): ``input``
(sizes, convention), ``test`` (decode, blur kernel, flip test, rescoring, NMS, batch size)
and ``data.workers``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from darkpose import geometry
from darkpose.config import Config, blur_kernel, transform_config
from darkpose.data.crop import Crop, crop_person  # defined in the data layer, re-exported

__all__ = [
    "Crop",
    "CropDataset",
    "Predictions",
    "crop_for_test",
    "crop_heatmaps",
    "crop_person",
    "evaluate",
    "flip_test",
    "heatmaps_to_keypoints",
    "predict",
]


def _heatmaps(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The model's heatmaps; of a multi-stack output (a list), the last stack's."""
    out = model(images)
    return out[-1] if isinstance(out, (list, tuple)) else out


def flip_test(
    model: torch.nn.Module,
    images: torch.Tensor,
    flip_pairs: Sequence[Sequence[int]],
    shift: bool,
) -> torch.Tensor:
    """Heatmaps averaged over the images and their mirror images.

    ``(model(images) + flip_heatmaps(model(flip(images)), flip_pairs, shift)) / 2``, the
    mirror heatmaps flipped back with left and right swapped; ``shift`` moves them one pixel
    right (the ``"hrnet"`` convention, :func:`darkpose.geometry.convention_flip_shift`).
    Runs under ``torch.inference_mode``; put the model in eval mode first.

    images (N, 3, H, W) -> (N, K, h, w)
    """
    with torch.inference_mode():
        plain = _heatmaps(model, images)
        mirrored = _heatmaps(model, torch.flip(images, dims=(-1,)))
        return (plain + geometry.flip_heatmaps(mirrored, flip_pairs, shift)) * 0.5


class CropDataset(Dataset):
    """The test-time crops of a top-down dataset's persons (its transform is not used).

    Item ``i``: ``{"image": (3, H, W) float32 tensor, "heatmap_to_image": (2, 3) float64,
    "index": i}``. ``load_image(path, expected_size)`` returns the BGR photo (default
    :func:`darkpose.data.read_image`, which checks the annotated size).
    """

    def __init__(
        self,
        dataset,
        cfg: Config,
        load_image: Callable[[Path, np.ndarray | None], np.ndarray] | None = None,
    ) -> None:
        self.dataset = dataset
        self.transform = transform_config(cfg, "none")
        self.color = getattr(dataset, "color", "rgb")
        self.load_image = load_image or _read_bgr

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        t = self.transform
        inst = self.dataset.instance(i)
        sizes = getattr(self.dataset, "image_sizes", None)
        image = self.load_image(inst.image_path, None if sizes is None else sizes[i])
        try:
            crop = crop_for_test(image, inst.center, inst.scale, t, self.color)
        except ValueError as e:
            raise ValueError(f"{inst.image_path}: annotation id {inst.annotation_id}: {e}") from e
        return {"image": torch.from_numpy(crop.pixels), "heatmap_to_image": crop.heatmap_to_image,
                "index": i}


def crop_for_test(image: np.ndarray, center, scale, transform, color: str) -> Crop:
    """The test-time crop of one person as an experiment's network sees it:
    :func:`crop_person` at the transform's input and heatmap sizes, convention, mean and std,
    channels in ``color`` order (the config's ``data.color``). ``transform``:
    ``transform_config(cfg, "none")``. ``image``: (H, W, 3) uint8 BGR."""
    t = transform
    return crop_person(image, center, scale, t.image_size, t.convention, heatmap_size=t.heatmap_size,
                       to_rgb=color == "rgb", mean=t.mean, std=t.std)


def _read_bgr(path: Path, expected_size) -> np.ndarray:
    from darkpose.data import read_image

    return read_image(path, "bgr", expected_size)


@dataclass(frozen=True)
class Predictions:
    """Keypoints of every person of a dataset, in dataset order.

    keypoints : (N, K, 3) float64, (x, y) in image pixels and the heatmap score
    image_ids, annotation_ids : (N,) int64 (annotation id -1 for detections; MPII: the
        entry's index in the annotation file)
    areas : (N,) float64, (200 s_w)(200 s_h), for OKS NMS
    box_scores : (N,) float64, detection scores (1 for ground-truth boxes)
    """

    keypoints: np.ndarray
    image_ids: np.ndarray
    areas: np.ndarray
    box_scores: np.ndarray
    annotation_ids: np.ndarray


def crop_heatmaps(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    cfg: Config,
    flip_pairs: Sequence[Sequence[int]],
) -> torch.Tensor:
    """The heatmaps of a batch of test-time crops: :func:`flip_test` when
    ``cfg.test.flip_test`` (the shift of ``cfg.input.convention``), else the model's output
    (of a multi-stack model, the last stack's). Put the model in eval mode first; runs under
    ``torch.inference_mode``.

    images (N, 3, H, W) on the model's device -> (N, K, h, w)
    """
    if cfg.test.flip_test:
        return flip_test(model, images, flip_pairs, geometry.convention_flip_shift(cfg.input.convention))
    with torch.inference_mode():
        return _heatmaps(model, images)


def heatmaps_to_keypoints(
    heatmaps, heatmap_to_image: np.ndarray, cfg: Config, *, return_covariance: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Decode heatmaps and recover the coordinates in image pixels.

    :func:`darkpose.codec.decode` with ``cfg.test.decode`` and :func:`blur_kernel`, on the
    heatmaps' device, then each crop's heatmap-to-image affine
    (:func:`darkpose.geometry.transform_points`). A CUDA tensor is decoded on its GPU; a CPU
    tensor goes through the codec's NumPy path, its fast path on the CPU (2.3 ms against
    24 ms for the traceable torch formulation on 32 x 17 maps of 64 x 48, 2 cores).

    With ``return_covariance=True`` the same single decode also gives each coordinate's
    estimated error covariance (docs/codec.md, "Uncertainty"), carried to image pixels by
    :func:`darkpose.geometry.transform_covariances`; the coordinates are the same. It is the
    covariance of the heatmaps given, i.e. of the flip-averaged maps under flip test.
    Needs ``test.decode`` "dark" or "dark-reference" (ValueError otherwise).

    heatmaps (N, K, h, w) torch tensor or NumPy array, heatmap_to_image (N, 2, 3) ->
    keypoints (N, K, 3) float64: (x, y) in image pixels and the heatmap score; and with
    ``return_covariance`` covariance (N, K, 2, 2) float32 in image px^2 (infinite variances,
    0 covariance where unknown)
    """
    from darkpose.codec import decode

    if isinstance(heatmaps, torch.Tensor):
        heatmaps = heatmaps.float()
        if heatmaps.device.type == "cpu":
            heatmaps = heatmaps.numpy()
    out = decode(heatmaps, method=cfg.test.decode, blur_kernel=blur_kernel(cfg), return_covariance=return_covariance)
    if isinstance(out[0], torch.Tensor):
        out = tuple(o.cpu().numpy() for o in out)
    coords, scores = out[:2]
    keypoints = np.empty((*scores.shape, 3))
    keypoints[..., :2] = geometry.transform_points(coords, heatmap_to_image)
    keypoints[..., 2] = scores
    if not return_covariance:
        return keypoints
    return keypoints, geometry.transform_covariances(out[2], heatmap_to_image).astype(np.float32)


def predict(
    model: torch.nn.Module,
    dataset,
    cfg: Config,
    *,
    device: str | torch.device = "cpu",
    progress: bool = True,
    load_image: Callable[[Path, np.ndarray | None], np.ndarray] | None = None,
) -> Predictions:
    """Run the model on the test-time crop of every person of ``dataset``.

    Batches of ``cfg.test.batch_size`` through a DataLoader with ``cfg.data.workers``
    workers; flip test when ``cfg.test.flip_test`` (the flip pairs of the dataset's metadata,
    the shift of ``cfg.input.convention``); :func:`darkpose.codec.decode` with
    ``cfg.test.decode`` and :func:`blur_kernel` on the model's device; coordinates recovered
    with each crop's heatmap-to-image affine. The model runs in eval mode and is given back
    in the mode it came in; it is moved to ``device``.

    ``dataset``: a :class:`darkpose.data.TopDownDataset` (its instances and images are used,
    not its transform).

    Under an initialised process group (``torchrun``; every rank must call it) rank ``r`` of
    ``W`` predicts persons ``r, r + W, ...`` and every rank returns the whole table, the
    shares gathered back into dataset order; the progress bar is rank 0's.
    """
    from darkpose.engine import distributed

    device = torch.device(device)
    pairs = dataset.metadata.flip_pairs
    share = range(distributed.rank(), len(dataset), distributed.world_size())
    crops = CropDataset(dataset, cfg, load_image)
    loader = DataLoader(crops if len(share) == len(dataset) else Subset(crops, share),
                        batch_size=cfg.test.batch_size, shuffle=False, num_workers=cfg.data.workers)
    k = dataset.metadata.num_keypoints
    keypoints = np.zeros((len(dataset), k, 3))
    was_training = model.training
    model.to(device).eval()
    try:
        with torch.inference_mode():
            batches = _progress(loader, progress and distributed.is_main(), "test")
            for batch in batches:
                heatmaps = crop_heatmaps(model, batch["image"].to(device), cfg, pairs)
                index = batch["index"].numpy()
                keypoints[index] = heatmaps_to_keypoints(heatmaps, batch["heatmap_to_image"].numpy(), cfg)
    finally:
        model.train(was_training)
    if distributed.is_distributed():
        for ranks_share, values in distributed.gather((share, keypoints[share])):
            keypoints[ranks_share] = values
    return Predictions(
        keypoints=keypoints,
        image_ids=np.asarray(dataset.image_ids, dtype=np.int64).copy(),
        areas=np.asarray(dataset.areas, dtype=np.float64).copy(),
        box_scores=np.asarray(dataset.scores, dtype=np.float64).copy(),
        annotation_ids=np.asarray(dataset.annotation_ids, dtype=np.int64).copy(),
    )


def _progress(loader, enabled: bool, desc: str):
    from tqdm import tqdm

    return tqdm(loader, desc=desc, disable=not enabled, file=sys.stderr, leave=False)


def evaluate(
    model: torch.nn.Module,
    cfg: Config,
    *,
    device: str | torch.device = "cpu",
    dataset=None,
    results_path: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """The metric table of ``model`` on the validation split of ``cfg``.

    COCO (``cfg.data.dataset == "coco"``, or any COCO-format file with its metadata):
    :func:`predict`, then :func:`darkpose.evaluation.keypoint_results` (rescoring with
    ``test.in_vis_thre``, ``test.nms`` with ``test.oks_thre`` and the metadata's OKS sigmas)
    and :func:`darkpose.evaluation.evaluate_coco` with the same sigmas: the ten numbers of
    :data:`darkpose.evaluation.STATS_NAMES`. MPII: :func:`darkpose.evaluation.evaluate_pckh`
    against ``annotations/gt_<val_set>.mat``, one prediction per entry of the annotation
    file: the PCKh rows.

    ``dataset`` defaults to ``build_dataset(cfg, "val", train=False)``. ``results_path``:
    where to keep the predictions as JSON (COCO results format; MPII: one entry per
    annotation-file entry), never replacing an existing file unless ``overwrite``; checked
    before the model runs.

    Under an initialised process group every rank must call it: the prediction is sharded
    across the ranks (:func:`predict`), rank 0 scores it (and writes ``results_path``), and
    every rank returns rank 0's table.
    """
    from darkpose._files import check_target
    from darkpose.engine import distributed
    from darkpose.engine.data import build_dataset, split_paths

    if results_path is not None:
        check_target(results_path, overwrite, "results file", "--overwrite")
    if dataset is None:
        dataset = build_dataset(cfg, "val", train=False)
    mpii = cfg.data.dataset == "mpii"
    if mpii:
        from darkpose.evaluation import load_pckh_ground_truth

        gt = load_pckh_ground_truth(split_paths(cfg, "val").pckh_gt)
    preds = predict(model, dataset, cfg, device=device, progress=progress)
    if mpii:
        return distributed.on_main(lambda: _pckh(preds, gt, results_path, overwrite))
    from darkpose.evaluation import evaluate_coco, keypoint_results

    def score() -> dict[str, float]:
        sigmas = dataset.metadata.sigmas
        results = keypoint_results(
            preds.keypoints, preds.image_ids, preds.box_scores, preds.areas,
            category_id=getattr(dataset, "category_id", 1), in_vis_thre=cfg.test.in_vis_thre,
            nms=cfg.test.nms, oks_thre=cfg.test.oks_thre, sigmas=sigmas,
        )
        return evaluate_coco(results, dataset.ann_file, results_file=results_path,
                             overwrite=overwrite, sigmas=sigmas)

    return distributed.on_main(score)


def _pckh(preds: Predictions, gt, results_path, overwrite: bool) -> dict[str, float]:
    """PCKh of predictions of an MPII dataset: back into annotation-file order (entries that
    the dataset skipped stay at (0, 0), misses)."""
    import json

    from darkpose._files import write_new
    from darkpose.evaluation import evaluate_pckh

    n = len(gt.positions)
    if len(preds.annotation_ids) and preds.annotation_ids.max() >= n:
        raise ValueError(f"the PCKh ground truth has {n} persons, the annotation file at least "
                         f"{preds.annotation_ids.max() + 1}: not the same split")
    ordered = np.zeros((n, preds.keypoints.shape[1], 3))
    ordered[preds.annotation_ids] = preds.keypoints
    if results_path is not None:
        rows = [{"index": i, "keypoints": kp.reshape(-1).tolist()} for i, kp in enumerate(ordered)]
        write_new(results_path, lambda f: f.write(json.dumps(rows).encode()), force=overwrite,
                  what="results file", force_hint="--overwrite")
    return evaluate_pckh(ordered[..., :2], gt)
