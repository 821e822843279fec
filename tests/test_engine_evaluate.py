"""Test time: the pure crop, flip test, the prediction loop, evaluate() and `darkpose test`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from torch import nn

from darkpose import geometry
from darkpose.bench.oracle import ground_truth_models
from darkpose.config import Config, apply_overrides, blur_kernel, transform_config
from darkpose.data import CocoKeypointDataset, TopDownTransform, crop_person, read_image
from darkpose.engine import evaluate as evaluate_module
from darkpose.engine.data import build_dataset
from darkpose.engine.evaluate import CropDataset, evaluate, flip_test, predict

ANN = "annotations/person_keypoints_train2017.json"


def mini_config(coco_mini, *overrides: str) -> Config:
    """coco-mini as a validation split at 128x96, no workers."""
    return apply_overrides(Config(), [
        f"data.root={coco_mini}", f"data.val_ann={coco_mini / ANN}",
        f"data.val_images={coco_mini / 'train2017'}", "data.val_set=train2017",
        "data.workers=0", "input.image_size=[96, 128]", "model.name=hrnet_tiny",
        *overrides,
    ])


def ground_truth_model(dataset, cfg: Config, method: str = "unbiased"):
    """A model returning the encoded ground truth of each crop of ``dataset`` and of its
    mirror image (the oracle's)."""
    return ground_truth_models(dataset, cfg, (method,), flip=True)["models"][method]


# -- 1. the crop ------------------------------------------------------------------------


@pytest.mark.parametrize("convention", ["darkpose", "hrnet"])
def test_crop_person_is_the_test_transform(coco_mini, convention):
    cfg = mini_config(coco_mini, f"input.convention={convention}")
    ds = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=(96, 128),
                             convention=convention)
    t = TopDownTransform(transform_config(cfg, "none"), train=False)
    for i in range(0, len(ds), 9):
        inst = ds.instance(i)
        image = read_image(inst.image_path, "bgr")
        for to_rgb in (True, False):
            sample = t(image, inst, to_rgb=to_rgb)
            crop = crop_person(image, inst.center, inst.scale, (96, 128), convention, to_rgb=to_rgb)
            assert crop.pixels.dtype == np.float32 and crop.pixels.shape == (3, 128, 96)
            np.testing.assert_array_equal(crop.pixels, sample.image.numpy())
            np.testing.assert_array_equal(crop.image_to_input, sample.meta.image_to_input)
            np.testing.assert_array_equal(crop.heatmap_to_image, sample.meta.heatmap_to_image)
            kp_hm = geometry.transform_points(inst.keypoints[None, :, :2], crop.image_to_heatmap[None])[0]
            np.testing.assert_array_equal(kp_hm, sample.meta.keypoints_heatmap[:, :2])


def test_crop_person_takes_any_image_and_names_bad_input():
    image = np.zeros((40, 30, 3), np.uint8)
    image[:, :15] = (255, 0, 0)  # left half blue (BGR)
    crop = crop_person(image, (14.5, 19.5), (0.15, 0.2), (12, 16), "darkpose")
    # R, G, B order: blue is channel 2, normalised (1 - 0.406) / 0.225 on the left
    assert crop.pixels[2, 8, 0] == pytest.approx((1 - 0.406) / 0.225, abs=1e-6)
    assert crop.pixels[0, 8, 0] == pytest.approx(-0.485 / 0.229, abs=1e-6)
    # B, G, R order: blue is channel 0
    bgr = crop_person(image, (14.5, 19.5), (0.15, 0.2), (12, 16), "darkpose", to_rgb=False)
    np.testing.assert_array_equal(bgr.pixels, crop.pixels[::-1])
    with pytest.raises(ValueError, match=r"image: expected a non-empty \(H, W, 3\) uint8"):
        crop_person(image[..., 0], (14.5, 19.5), (0.15, 0.2), (12, 16), "darkpose")
    with pytest.raises(TypeError, match="image: expected a NumPy array, got list"):
        crop_person(image.tolist(), (14.5, 19.5), (0.15, 0.2), (12, 16), "darkpose")
    with pytest.raises(ValueError, match="scales"):
        crop_person(image, (14.5, 19.5), (0.0, 0.2), (12, 16), "darkpose")
    with pytest.raises(ValueError, match=r"std: expected three finite positive numbers \(R, G, B\)"):
        crop_person(image, (14.5, 19.5), (0.15, 0.2), (12, 16), "darkpose", std=(0.2, 0.0, 0.2))
    # one definition, in the data layer; the engine re-exports it
    assert evaluate_module.crop_person is crop_person


# -- 2. flip test -----------------------------------------------------------------------


def test_flip_test_of_a_hourglass_in_training_mode_uses_the_last_stack():
    class TwoStacks(nn.Module):
        def forward(self, x):
            m = x[:, :2, ::4, ::4]
            return [m * 0, m] if self.training else m

    x = torch.rand(2, 3, 16, 12)
    model = TwoStacks()
    out = flip_test(model, x, [(0, 1)], shift=False)
    # channel 0 of the mirrored input flipped back and swapped to channel 1
    expected = (x[:, :2, ::4, ::4] + torch.flip(torch.flip(x, dims=(-1,))[:, :2, ::4, ::4], dims=(-1,))[:, [1, 0]]) / 2
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize(("convention", "offset", "tolerance", "y_tolerance"),
                         [("darkpose", 0.0, 1e-4, 1e-5), ("hrnet", 0.125, 2e-3, 0.02)])
def test_flip_test_of_perfect_heatmaps_lands_where_the_plain_test_does(
    coco_mini, convention, offset, tolerance, y_tolerance
):
    """A model returning the encoded ground truth of its input (and of the mirrored input)
    decodes to the same coordinates with and without flip test under darkpose. Under hrnet
    the mirrored crop's heatmap, flipped back, sits 3/4 heatmap px left of the plain one
    (input x' = W - 1 - x is x' = w - 1/4 - x on the heatmap); the reference's 1-px shift
    leaves it 1/4 px right, and the mean of the two lands 1/8 px right."""
    cfg = mini_config(coco_mini, f"input.convention={convention}")
    ds = build_dataset(cfg, "val", train=False)
    model = ground_truth_model(ds, cfg)
    plain = predict(model, ds, apply_overrides(cfg, ["test.flip_test=false"]), progress=False)
    flipped = predict(model, ds, cfg, progress=False)
    crops = CropDataset(ds, cfg)
    to_heatmap = np.stack([geometry.invert_affine(crops[i]["heatmap_to_image"]) for i in range(len(ds))])
    plain_hm, flipped_hm = (geometry.transform_points(p.keypoints[..., :2], to_heatmap)
                            for p in (plain, flipped))
    # labelled keypoints whose peak is inside the frame (measured 794 and 793 of 800)
    inside = (ds.keypoints[..., 2] > 0) & (plain.keypoints[..., 2] > 0.5)
    dx, dy = (flipped_hm - plain_hm)[inside].T
    # measured mean dx: darkpose 0.0000, hrnet 0.1257 heatmap px (without the shift: 0.5008
    # under darkpose, -0.3748 under hrnet); |dy| at most 1.9e-6 under darkpose. Under hrnet
    # 0.014 (measured): the averaged map is the mean of two Gaussians 1/4 px apart, a little
    # wider in x than in y, and within 4 px of the top or bottom edge "dark"'s isotropic
    # Gaussian fit trades that spread against the y position
    assert abs(dx.mean() - offset) < tolerance
    assert np.abs(dy).max() < y_tolerance
    if convention == "darkpose":
        assert np.abs(dx).max() < 1e-4  # measured 2e-5 (float32 decode)


# -- 3. predict and evaluate ------------------------------------------------------------


def test_blur_kernel_of_the_config():
    assert blur_kernel(apply_overrides(Config(), ["input.image_size=[96, 128]"])) == 3
    assert blur_kernel(Config()) == 11  # 256x192
    assert blur_kernel(apply_overrides(Config(), ["test.blur_kernel=5"])) == 5


def test_perfect_heatmaps_through_the_test_loop(coco_mini):
    """The oracle's figure through predict -> keypoint_results -> evaluate_coco."""
    from darkpose.evaluation import evaluate_coco, keypoint_results

    cfg = mini_config(coco_mini)
    ds = build_dataset(cfg, "val", train=False)
    model = ground_truth_model(ds, cfg)
    preds = predict(model, ds, cfg, progress=False)
    assert preds.keypoints.shape == (86, 17, 3)
    np.testing.assert_array_equal(preds.image_ids, ds.image_ids)
    labelled = ds.keypoints[..., 2] > 0
    err = np.linalg.norm(preds.keypoints[..., :2] - ds.keypoints[..., :2], axis=-1)[labelled]
    # sigma 1 targets decoded with the 128x96 blur kernel 3, where "dark" fits every maximum:
    # median 2.5e-6 image px (0.0484 with the 3-tap Taylor step in the interior, 0.0497 before
    # any fit)
    assert np.median(err) < 1e-4
    # the oracle's scoring (no NMS, every score 1): benchmarks/oracle.json 96x128 unbiased+dark
    results = keypoint_results(preds.keypoints, preds.image_ids, nms="none", rescoring=False)
    assert evaluate_coco(results, ds.ann_file)["AP"] == pytest.approx(0.9920216440248676, abs=1e-9)
    # the test recipe: rescoring and OKS NMS change the ranking a little (measured 0.99130)
    assert model.training
    table = evaluate(model, cfg, dataset=ds, progress=False)
    assert model.training  # given back in the mode it came in
    assert list(table)[:6] == ["AP", "AP50", "AP75", "APm", "APl", "AR"]
    assert table["AP"] == pytest.approx(0.9913, abs=1e-4)


def face_dataset(coco_mini, tmp_path):
    """coco-mini's five face keypoints as a COCO-format dataset with its own metadata."""
    raw = json.loads((coco_mini / ANN).read_text())
    names = ["nose", "left_eye", "right_eye", "left_ear", "right_ear"]
    for a in raw["annotations"]:
        a["keypoints"] = a["keypoints"][:15]
        a["num_keypoints"] = sum(v > 0 for v in a["keypoints"][2::3])
    for c in raw["categories"]:
        c["keypoints"] = names
        c.pop("skeleton", None)
    ann = tmp_path / "faces.json"
    ann.write_text(json.dumps(raw))
    meta = tmp_path / "faces_meta.json"
    # half of COCO's face sigmas: an OKS stricter than COCO's
    meta.write_text(json.dumps({"keypoints": names, "flip_pairs": [[1, 2], [3, 4]],
                                "sigmas": [0.013, 0.0125, 0.0125, 0.0175, 0.0175]}))
    return ann, meta


def test_a_coco_format_dataset_is_evaluated_with_its_own_sigmas(coco_mini, tmp_path):
    ann, meta = face_dataset(coco_mini, tmp_path)
    cfg = mini_config(coco_mini, f"data.val_ann={ann}", f"data.metadata={meta}")
    ds = build_dataset(cfg, "val", train=False)
    assert ds.metadata.num_keypoints == 5
    model = ground_truth_model(ds, cfg, method="quantized")
    table = evaluate(model, apply_overrides(cfg, ["test.decode=argmax"]), dataset=ds, progress=False)
    # quantised targets read at the argmax land up to half a heatmap px off: measured AP
    # 0.1348 with the dataset's sigmas, 0.6459 with COCO's face sigmas (twice as loose)
    assert table["AP"] == pytest.approx(0.1348, abs=1e-4)


# -- 4. darkpose test -------------------------------------------------------------------


def mini_args(coco_mini, *extra: str) -> list[str]:
    return ["--set", f"data.root={coco_mini}", f"data.val_ann={coco_mini / ANN}",
            f"data.val_images={coco_mini / 'train2017'}", "data.val_set=train2017",
            "data.workers=0", *extra]


@pytest.fixture
def experiment(tmp_path):
    """A config of hrnet_tiny at 128x96 and a checkpoint of it (random weights)."""
    from darkpose.models import build_model, save_checkpoint

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(f"model: {{name: hrnet_tiny}}\ninput: {{image_size: [96, 128]}}\n"
                   f"test: {{batch_size: 16}}\noutput_dir: {tmp_path / 'run'}\n")
    torch.manual_seed(0)
    weights = save_checkpoint(build_model("hrnet_tiny", 17), tmp_path / "tiny.pth")
    return cfg, weights


def test_darkpose_test_end_to_end(coco_mini, experiment, capsys):
    from darkpose.cli import main

    cfg, weights = experiment
    argv = ["test", str(cfg), "--checkpoint", str(weights), *mini_args(coco_mini)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    results = cfg.parent / "run" / "results_train2017.json"
    assert f"results: {results}" in out
    for name in ("AP", "AP50", "AP75", "APm", "APl", "AR"):
        assert f"\n  {name} " in out
    written = json.loads(results.read_text())
    # one pose per person kept by OKS NMS, in COCO results format
    assert 0 < len(written) <= 86
    assert set(written[0]) == {"image_id", "category_id", "keypoints", "score"}
    assert len(written[0]["keypoints"]) == 51
    before = results.read_bytes()
    assert main(argv) == 2  # refused: the results file exists
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(results) in err and "--overwrite" in err
    assert results.read_bytes() == before
    assert main([*argv, "test.flip_test=false", "--overwrite"]) == 0
    assert "flip test off" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["data.val_ann=/nonexistent/ann.json"], r"data\.val_ann: file not found: /nonexistent/ann\.json"),
        (["data.val_ann=null", "data.root=/nonexistent"],
         r"data\.val_ann: file not found: /nonexistent/annotations/person_keypoints_train2017\.json"),
        (["data.val_images=/nonexistent/images"], r"data\.val_images: folder not found"),
        (["test.flip=false"], r"unknown key 'test\.flip'; did you mean .*flip_test"),
        (["test.use_gt_boxes=false"], r"test\.detections: required when test\.use_gt_boxes is false"),
    ],
)
def test_darkpose_test_bad_input_is_one_line_and_exit_2(coco_mini, experiment, capsys, extra, message):
    from darkpose.cli import main

    cfg, weights = experiment
    assert main(["test", str(cfg), "--checkpoint", str(weights), *mini_args(coco_mini, *extra)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("darkpose test: ")
    assert re.search(message, err), err
    assert not (cfg.parent / "run").exists()


def test_darkpose_test_refuses_a_checkpoint_of_another_model(coco_mini, experiment, tmp_path, capsys):
    from darkpose.cli import main
    from darkpose.models import build_model, save_checkpoint

    cfg, _ = experiment
    for name, k in (("hrnet_tiny", 16), ("simple_baseline_r18", 17)):
        other = save_checkpoint(build_model(name, k), tmp_path / f"{name}_{k}.pth")
        assert main(["test", str(cfg), "--checkpoint", str(other), *mini_args(coco_mini)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert f"{other}: not a checkpoint of model.name='hrnet_tiny' with 17 keypoints" in err
        if k == 16:
            assert "2 of another shape; e.g. final_layer.weight: file [16, 8, 1, 1], model [17, 8, 1, 1]" in err
        else:
            assert "250 missing, 120 unexpected, 16 of another shape" in err


def test_darkpose_test_names_a_missing_image_read_in_a_worker(coco_mini, experiment, tmp_path, capsys):
    from darkpose.cli import main

    cfg, weights = experiment
    raw = json.loads((coco_mini / ANN).read_text())
    raw["images"][3]["file_name"] = "missing.jpg"
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps(raw))
    argv = ["test", str(cfg), "--checkpoint", str(weights), *mini_args(coco_mini, f"data.val_ann={ann}",
                                                                          "data.workers=1")]
    assert main(argv) == 2
    err = capsys.readouterr().err  # after the progress bar: the worker's error, in one line
    assert "Traceback" not in err and "Caught" not in err
    assert err.strip().splitlines()[-1] == (
        f"darkpose test: image file not found: {coco_mini / 'train2017' / 'missing.jpg'}")


def test_darkpose_test_refuses_detections_of_other_images(coco_mini, experiment, tmp_path, capsys, caplog):
    from darkpose.cli import main

    cfg, weights = experiment
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 80],
                                 "score": 0.9}]))
    extra = ["test.use_gt_boxes=false", f"test.detections={dets}"]
    assert main(["test", str(cfg), "--checkpoint", str(weights), *mini_args(coco_mini, *extra)]) == 2
    assert f"{dets}: skipped 1 detections of images not in {coco_mini / ANN}" in caplog.text
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"darkpose test: {coco_mini / ANN}: no person instances: 0 detections in {dets}")


def test_darkpose_test_takes_the_config_a_training_checkpoint_stores(coco_mini, experiment, tmp_path, capsys):
    from darkpose.cli import main
    from darkpose.config import config_to_dict
    from darkpose.models import build_model, read_checkpoint, save_checkpoint

    yaml_cfg, _ = experiment
    # the config of a training run elsewhere: its data paths do not exist here; flip test off
    stored = apply_overrides(Config(), [
        "model.name=hrnet_tiny", "input.image_size=[96, 128]", "test.batch_size=16",
        "test.flip_test=false", "data.root=/elsewhere", "data.val_set=train2017", "data.workers=0",
        f"output_dir={tmp_path / 'trained'}",
    ])
    torch.manual_seed(0)
    path = save_checkpoint(build_model("hrnet_tiny", 17), tmp_path / "best.pth",
                           meta={"model": "hrnet_tiny", "config": config_to_dict(stored)},
                           training={"epoch": 3, "step": 12})
    assert read_checkpoint(path).format_version == 2

    # no CONFIG: the stored config, whose data.val_ann is not here, is the one read
    assert main(["test", "--checkpoint", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "data.val_ann: file not found: /elsewhere/annotations/person_keypoints_train2017.json" in err
    # ... with the --set overrides on top
    sets = ["--set", f"data.val_ann={coco_mini / ANN}", "--set", f"data.val_images={coco_mini / 'train2017'}"]
    assert main(["test", "--checkpoint", str(path), *sets]) == 0
    out = capsys.readouterr().out
    assert "model hrnet_tiny" in out and "flip test off" in out
    for name in ("AP", "AP50", "AP75", "APm", "APl", "AR"):
        assert f"\n  {name} " in out
    assert f"results: {tmp_path / 'trained' / 'results_train2017.json'}" in out
    stored_table = out[out.index("\n  AP "):out.index("results:")]

    # with CONFIG too, CONFIG wins and the stored config is ignored (its output_dir here)
    argv = ["test", str(yaml_cfg), "--checkpoint", str(path), *mini_args(coco_mini, "test.flip_test=false")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"results: {yaml_cfg.parent / 'run' / 'results_train2017.json'}" in out
    # the same settings and weights give the same table either way
    assert out[out.index("\n  AP "):out.index("results:")] == stored_table


def test_darkpose_test_without_config_needs_a_checkpoint_that_stores_one(experiment, capsys):
    from darkpose.cli import main

    _, weights = experiment  # written by save_checkpoint without meta: no stored config
    assert main(["test", "--checkpoint", str(weights)]) == 2
    err = capsys.readouterr().err
    assert err == (f"darkpose test: {weights}: the checkpoint stores no config (meta['config']); give "
                   f"the experiment: darkpose test CONFIG --checkpoint {weights}\n")
    assert main(["test"]) == 2
    assert "no CONFIG: give an experiment YAML, or --checkpoint F" in capsys.readouterr().err


def test_mpii_pckh_through_the_test_loop(tmp_path):
    """PCKh of perfect heatmaps: predictions go back to annotation-file order (the middle
    entry, scale 0, is skipped by the dataset and scores nothing)."""
    import cv2
    from scipy.io import savemat

    (tmp_path / "images").mkdir()
    (tmp_path / "annot").mkdir()
    # texture, so that every crop differs (the ground-truth model is keyed by its pixels)
    texture = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "images" / "a.png"), texture)
    joints = [[[40.0 + 5 * i, 20.0 + 4 * i] for i in range(16)], [[50.0, 50.0]] * 16,
              [[20.0 + 6 * i, 80.0 - 3 * i] for i in range(16)]]
    entries = [{"image": "a.png", "center": c, "scale": s, "joints": j, "joints_vis": [1] * 16}
               for c, s, j in zip(([81.0, 41.0], [101.0, 61.0], [61.0, 51.0]), (0.4, 0.0, 0.5),
                                  joints, strict=True)]
    (tmp_path / "annot" / "valid.json").write_text(json.dumps(entries))
    missing = np.zeros((16, 3))
    missing[:, 1] = 1
    corners = np.array([[[0.0, 0.0]] * 3, [[5.0, 5.0]] * 3]).transpose(0, 2, 1)
    savemat(tmp_path / "annot" / "gt_valid.mat", {
        "pos_gt_src": np.array(joints).transpose(1, 2, 0), "jnt_missing": missing,
        "headboxes_src": corners})
    cfg = apply_overrides(Config(), [f"data.root={tmp_path}", "data.dataset=mpii", "data.metadata=mpii",
                                     "data.val_set=valid", "data.workers=0", "input.image_size=[256, 256]"])
    ds = build_dataset(cfg, "val", train=False)
    assert ds.annotation_ids.tolist() == [0, 2]
    table = evaluate(ground_truth_model(ds, cfg), cfg, dataset=ds, progress=False,
                     results_path=tmp_path / "pred.json")
    assert table == {name: 100.0 for name in ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee",
                                               "Ankle", "Mean", "Mean@0.1")}
    rows = json.loads((tmp_path / "pred.json").read_text())
    assert [r["index"] for r in rows] == [0, 1, 2] and not any(rows[1]["keypoints"])
    with pytest.raises(FileExistsError, match="pred.json already exists; pass --overwrite"):
        evaluate(ground_truth_model(ds, cfg), cfg, dataset=ds, results_path=tmp_path / "pred.json")
