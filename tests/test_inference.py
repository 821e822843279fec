"""darkpose.Predictor: the same path as `darkpose test`, its inputs and its errors."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

import darkpose
from darkpose.config import Config, apply_overrides, config_to_dict
from darkpose.engine.data import build_dataset
from darkpose.evaluation import keypoint_results
from darkpose.models import build_model, save_checkpoint

ANN = "annotations/person_keypoints_train2017.json"


def tiny_config(coco_mini, tmp_path, *overrides: str) -> Config:
    """hrnet_tiny at 64x48 on coco-mini as the validation split, no NMS (one result per box)."""
    return apply_overrides(Config(), [
        "model.name=hrnet_tiny", "input.image_size=[48, 64]", "data.workers=0",
        f"data.root={coco_mini}", f"data.val_ann={coco_mini / ANN}",
        f"data.val_images={coco_mini / 'train2017'}", "data.val_set=train2017",
        "test.nms=none", "test.batch_size=16", f"output_dir={tmp_path / 'run'}", *overrides,
    ])


def tiny_checkpoint(cfg: Config, path, num_joints: int = 17):
    """Random hrnet_tiny weights in the training checkpoint format (config inside)."""
    torch.manual_seed(0)
    model = build_model("hrnet_tiny", num_joints)
    return save_checkpoint(model, path, meta={"model": cfg.model.name, "num_joints": num_joints,
                                              "config": config_to_dict(cfg)})


@pytest.fixture
def experiment(coco_mini, tmp_path):
    cfg = tiny_config(coco_mini, tmp_path)
    return cfg, tiny_checkpoint(cfg, tmp_path / "tiny.pth")


@pytest.fixture
def predictor(experiment):
    return darkpose.Predictor(experiment[1])


@pytest.mark.parametrize("flip", ["true", "false"])
def test_predictor_gives_the_keypoints_of_darkpose_test(coco_mini, experiment, tmp_path, flip):
    from darkpose.cli import main

    cfg, ckpt = experiment
    results = tmp_path / "results.json"
    assert main(["test", "--checkpoint", str(ckpt), "--results", str(results),
                 "--set", f"test.flip_test={flip}"]) == 0
    written = json.loads(results.read_text())

    # the same images and ground-truth boxes (cleaned as the dataset cleans them), per image
    dataset = build_dataset(cfg, "val", train=False)
    order = list(dict.fromkeys(dataset.image_ids.tolist()))
    rows = [np.flatnonzero(dataset.image_ids == i) for i in order]
    paths = [dataset.image_paths[r[0]] for r in rows]
    predictor = darkpose.Predictor(ckpt, flip_test=flip == "true")
    preds = predictor.predict_many(paths, [dataset.boxes[r] for r in rows])
    assert [len(p.keypoints) for p in preds] == [len(r) for r in rows]
    for p, r in zip(preds, rows, strict=True):
        np.testing.assert_array_equal(p.boxes, dataset.boxes[r])
    keypoints = np.concatenate([p.keypoints for p in preds])
    ids = np.concatenate([dataset.image_ids[r] for r in rows])
    ours = keypoint_results(keypoints, ids, nms="none", in_vis_thre=cfg.test.in_vis_thre)
    assert len(ours) == len(written) == len(dataset) == 86
    assert [r["image_id"] for r in ours] == [r["image_id"] for r in written]
    got = np.array([r["keypoints"] for r in ours])
    want = np.array([r["keypoints"] for r in written])
    # exactly equal: the same functions; the persons batched by image here and in dataset
    # order there give the same numbers on this CPU (an exact JSON float round trip)
    np.testing.assert_array_equal(got, want)
    assert [r["score"] for r in ours] == [r["score"] for r in written]


def test_no_boxes_is_the_whole_image_and_empty_boxes_give_no_person(predictor):
    image = np.random.default_rng(0).integers(0, 256, (90, 70, 3), dtype=np.uint8)
    whole = predictor.predict(image)
    np.testing.assert_array_equal(whole.boxes, [[0, 0, 70, 90]])
    np.testing.assert_array_equal(whole.box_scores, [1.0])
    assert whole.keypoints.shape == (1, 17, 3) and whole.heatmaps is None
    same = predictor.predict(image, [[0, 0, 70, 90]], return_heatmaps=True)
    np.testing.assert_array_equal(same.keypoints, whole.keypoints)
    assert same.heatmaps.shape == (1, 17, 16, 12) and same.heatmaps.dtype == np.float32
    # the heatmap centre ((12 - 1) / 2, (16 - 1) / 2) lands on the box centre ((70 - 1) / 2, (90 - 1) / 2)
    centre = same.heatmap_to_image[0] @ [5.5, 7.5, 1.0]
    np.testing.assert_allclose(centre, [34.5, 44.5], atol=1e-12)
    empty = predictor.predict(image, [], return_heatmaps=True)
    assert empty.keypoints.shape == (0, 17, 3) and empty.boxes.shape == (0, 4)
    assert empty.heatmaps.shape == (0, 17, 16, 12)


def test_xyxy_boxes_bgr_arrays_and_paths_agree(predictor, tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (80, 60, 3), dtype=np.uint8)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), rgb[:, :, ::-1])
    xywh = [[5, 6, 30, 50], [20, 10, 35, 60]]
    xyxy = [[5, 6, 35, 56], [20, 10, 55, 70]]
    a = predictor.predict(rgb, xywh, box_scores=[0.9, 0.5])
    b = predictor.predict(rgb[:, :, ::-1], xyxy, box_format="xyxy", color="bgr")
    c = predictor.predict(path, xywh)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.keypoints, c.keypoints)
    np.testing.assert_array_equal(b.boxes, xywh)
    np.testing.assert_array_equal(a.box_scores, [0.9, 0.5])
    # batching across images gives what one image at a time gives
    many = predictor.predict_many([rgb, path], [xywh, xywh[:1]])
    np.testing.assert_allclose(many[0].keypoints, a.keypoints, atol=1e-6)
    np.testing.assert_allclose(many[1].keypoints, a.keypoints[:1], atol=1e-6)


def test_grey_rgba_and_16_bit_images_are_converted(predictor):
    grey = np.random.default_rng(2).integers(0, 256, (64, 48), dtype=np.uint8)
    three = np.repeat(grey[:, :, None], 3, axis=2)
    want = predictor.predict(three).keypoints
    np.testing.assert_array_equal(predictor.predict(grey).keypoints, want)
    np.testing.assert_array_equal(predictor.predict(grey[:, :, None]).keypoints, want)
    rgba = np.concatenate([three, np.full((64, 48, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(predictor.predict(rgba).keypoints, want)
    wide = three.astype(np.uint16) * 256 + 255  # >> 8 gives the 8-bit image back
    np.testing.assert_array_equal(predictor.predict(wide).keypoints, want)


def test_boxes_outside_the_image_give_a_prediction(predictor):
    image = np.full((50, 40, 3), 128, np.uint8)
    out = predictor.predict(image, [[30, 40, 30, 30], [500, 500, 20, 40]])
    assert out.keypoints.shape == (2, 17, 3) and np.isfinite(out.keypoints).all()


@pytest.mark.parametrize(("image", "boxes", "error", "message"), [
    (np.zeros((10, 10, 3), np.float32), None, TypeError, "images[0]: expected a uint8 (or uint16) array, got float32"),
    (np.zeros((10, 10, 2), np.uint8), None, ValueError, "images[0]: expected a non-empty (H, W, 3) array"),
    (np.zeros((0, 10, 3), np.uint8), None, ValueError, "images[0]: expected a non-empty (H, W, 3) array"),
    ("list", None, TypeError, "images[0]: expected a file path or a NumPy array, got list"),
    (None, [[1, 2, 0, 5]], ValueError, "images[0]: boxes[0]: zero-size box (width 0, height 5"),
    (None, [[0, 0, 5, 5], [1, 2, 3, -1]], ValueError, "images[0]: boxes[1]: zero-size box"),
    (None, [[np.nan, 2, 3, 4]], ValueError, "images[0]: boxes[0]: expected finite coordinates"),
    (None, [[1, 2, 3]], ValueError, "images[0]: boxes: expected a (P, 4) array (xywh), got shape (1, 3)"),
])
def test_bad_images_and_boxes_are_named(predictor, image, boxes, error, message):
    image = np.zeros((20, 20, 3), np.uint8) if image is None else [] if isinstance(image, str) else image
    with pytest.raises(error) as e:
        predictor.predict(image, boxes)
    assert str(e.value).startswith(message)


def test_missing_and_unreadable_image_files_are_named(predictor, tmp_path):
    with pytest.raises(FileNotFoundError, match=f"image file not found: {tmp_path / 'no.jpg'}"):
        predictor.predict(tmp_path / "no.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    with pytest.raises(ValueError, match=f"{bad}: could not be decoded as an image"):
        predictor.predict(bad)


def test_a_checkpoint_of_another_keypoint_count_is_named(coco_mini, tmp_path):
    cfg = tiny_config(coco_mini, tmp_path)
    other = tiny_checkpoint(cfg, tmp_path / "k16.pth", num_joints=16)
    with pytest.raises(ValueError) as e:
        darkpose.Predictor(other)
    assert str(e.value).startswith(f"{other}: not a checkpoint of model.name='hrnet_tiny' with 17 keypoints "
                                   "(data.metadata='coco'): tensors 2 of another shape; e.g. final_layer")


def test_a_checkpoint_without_config_needs_one(tmp_path):
    plain = save_checkpoint(build_model("hrnet_tiny", 17), tmp_path / "plain.pth")
    with pytest.raises(ValueError, match="stores no config"):
        darkpose.Predictor(plain)
    cfg = apply_overrides(Config(), ["model.name=hrnet_tiny", "input.image_size=[48, 64]"])
    predictor = darkpose.Predictor(plain, cfg, decode="argmax", overrides=["test.batch_size=2"])
    assert predictor.config.test.decode == "argmax" and predictor.config.test.batch_size == 2


def test_any_metadata_works(coco_mini, tmp_path):
    meta = tmp_path / "three.json"
    meta.write_text(json.dumps({"name": "three", "keypoints": ["a", "left_b", "right_b"],
                                "flip_pairs": [[1, 2]], "sigmas": [0.05, 0.05, 0.05]}))
    cfg = apply_overrides(Config(), ["model.name=hrnet_tiny", "input.image_size=[48, 64]",
                                     f"data.metadata={meta}"])
    torch.manual_seed(0)
    predictor = darkpose.Predictor.from_model(build_model("hrnet_tiny", 3), cfg)
    out = predictor.predict(np.zeros((30, 30, 3), np.uint8), [[0, 0, 30, 30], [5, 5, 10, 10]])
    assert out.keypoints.shape == (2, 3, 3) and predictor.metadata.num_keypoints == 3


@pytest.mark.parametrize(("with_decode", "flip_test", "image_coords", "convention"), [
    (False, False, False, "darkpose"), (False, True, False, "darkpose"), (True, False, False, "darkpose"),
    (True, True, True, "darkpose"),
    # the hrnet flip shifts the heatmaps: a second flip test around the graph's would show
    (False, True, False, "hrnet"),
])
def test_an_exported_graph_predicts_what_the_model_does(coco_mini, tmp_path, with_decode, flip_test, image_coords,
                                                        convention):
    export = pytest.importorskip("darkpose.export")
    cfg = apply_overrides(Config(), ["model.name=hrnet_tiny", "input.image_size=[48, 64]", "test.flip_test=true",
                                     f"input.convention={convention}"])
    torch.manual_seed(0)
    model = build_model("hrnet_tiny", 17)
    # an untrained HRNet (weights of std 0.001) gives maps of 1e-12, all cancellation, on which
    # onnxruntime and PyTorch differ by whole percents and any decode jumps: weights of the
    # usual scale give maps of O(1) that both compute alike
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    path = export.export_onnx(model, cfg, tmp_path / "pose.onnx", with_decode=with_decode, flip_test=flip_test,
                              image_coords=image_coords)
    photo = coco_mini / "train2017" / "000000370162.jpg"
    boxes = [[10, 20, 120, 300], [300, 50, 200, 350], [-20, 100, 60, 80]]
    onnx_predictor = darkpose.Predictor(path)  # the config stored in the graph
    # a heatmap graph without flip inside gets the config's flip test around it
    expected_flip = flip_test or not with_decode
    assert onnx_predictor.config.test.flip_test is expected_flip
    assert onnx_predictor.gives_heatmaps is not with_decode
    got = onnx_predictor.predict(photo, boxes)
    want = darkpose.Predictor.from_model(model, cfg, flip_test=expected_flip).predict(photo, boxes)
    np.testing.assert_array_equal(got.boxes, want.boxes)
    # measured: at most 2.6e-3 px (1.2e-4 heatmap px: random weights give maps without peaks, on
    # which the border fit carries float32 differences further) and 2.6e-6 relative in score
    np.testing.assert_allclose(got.keypoints[..., :2], want.keypoints[..., :2], rtol=0, atol=5e-3)
    np.testing.assert_allclose(got.keypoints[..., 2], want.keypoints[..., 2], rtol=1e-4, atol=1e-7)
    if with_decode:
        with pytest.raises(ValueError, match=f"{path}: a graph with the decode inside gives no heatmaps"):
            onnx_predictor.predict(photo, boxes, return_heatmaps=True)
        with pytest.raises(ValueError, match=f"{path}: the graph has flip_test={flip_test} inside"):
            darkpose.Predictor(path, flip_test=not flip_test)


def test_the_covariance_is_decodes_carried_to_image_pixels(coco_mini, experiment):
    from darkpose.codec import decode
    from darkpose.config import blur_kernel

    cfg, ckpt = experiment
    photo = coco_mini / "train2017" / "000000370162.jpg"
    boxes = [[10, 20, 120, 300], [300, 50, 200, 350]]
    plain = darkpose.Predictor(ckpt).predict(photo, boxes)
    assert plain.covariance is None
    with_cov = darkpose.Predictor(ckpt, covariance=True)
    got = with_cov.predict(photo, boxes, return_heatmaps=True)
    np.testing.assert_array_equal(got.keypoints, plain.keypoints)  # the same decode
    assert got.covariance.shape == (2, 17, 2, 2) and got.covariance.dtype == np.float32
    _, _, cov = decode(got.heatmaps, cfg.test.decode, blur_kernel(cfg), return_covariance=True)
    lin = got.heatmap_to_image[:, None, :, :2]  # image = A heatmap + t: A C A^T
    want = np.einsum("nkij,nkjl,nkml->nkim", np.broadcast_to(lin, cov.shape), cov.astype(np.float64),
                     np.broadcast_to(lin, cov.shape))
    known = np.isfinite(cov).all(axis=(-2, -1))
    assert known.sum() > 20  # measured 31 of 34 known on these random weights
    np.testing.assert_allclose(got.covariance[known], want[known], rtol=1e-5)
    assert np.isinf(got.covariance[~known][:, [0, 1], [0, 1]]).all()
    # a heatmap pixel is 25-40 image pixels here: measured at least 649x the heatmap variance
    assert (got.covariance[known][:, 0, 0] > 300 * cov[known][:, 0, 0]).all()
    empty = with_cov.predict(photo, [])
    assert empty.covariance.shape == (0, 17, 2, 2)


def test_covariance_needs_a_dark_decode_and_heatmaps(coco_mini, experiment, tmp_path):
    cfg, ckpt = experiment
    with pytest.raises(ValueError, match="covariance=True: needs test.decode 'dark' or 'dark-reference'.*'argmax'"):
        darkpose.Predictor(ckpt, decode="argmax", covariance=True)
    export = pytest.importorskip("darkpose.export")
    torch.manual_seed(0)
    path = export.export_onnx(build_model("hrnet_tiny", 17), cfg, tmp_path / "coords.onnx", with_decode=True)
    with pytest.raises(ValueError, match=f"{path}: covariance=True needs the heatmaps.*export a heatmaps graph"):
        darkpose.Predictor(path, covariance=True)
