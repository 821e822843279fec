"""`darkpose predict` on coco-mini photos, a folder with a bad file, a video, and bad input."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from darkpose.cli import main
from darkpose.config import Config, apply_overrides, config_to_dict
from darkpose.models import build_model, save_checkpoint
from onnx_graphs import constant_graph

ANN = "annotations/person_keypoints_train2017.json"


@pytest.fixture
def checkpoint(tmp_path):
    """Random hrnet_tiny weights at 64x48 in the training checkpoint format (config inside)."""
    cfg = apply_overrides(Config(), ["model.name=hrnet_tiny", "input.image_size=[48, 64]"])
    torch.manual_seed(0)
    return save_checkpoint(build_model("hrnet_tiny", 17), tmp_path / "tiny.pth",
                           meta={"config": config_to_dict(cfg)})


@pytest.fixture
def photos(coco_mini, tmp_path):
    """Ten coco-mini photos (links) and a detection file of their ground-truth person boxes."""
    raw = json.loads((coco_mini / ANN).read_text())
    images = raw["images"][:10]
    folder = tmp_path / "photos"
    folder.mkdir()
    for im in images:
        (folder / im["file_name"]).symlink_to(coco_mini / "train2017" / im["file_name"])
    ids = {im["id"] for im in images}
    dets = [{"image_id": a["image_id"], "category_id": 1, "bbox": a["bbox"], "score": 0.5}
            for a in raw["annotations"] if a["image_id"] in ids and not a.get("iscrowd", 0)]
    boxes = tmp_path / "gt_boxes.json"
    boxes.write_text(json.dumps(dets))
    return folder, boxes, images, dets


def test_predict_coco_mini_with_ground_truth_boxes(coco_mini, checkpoint, photos, tmp_path, capsys):
    from pycocotools.coco import COCO

    folder, boxes, images, dets = photos
    out = tmp_path / "out"
    argv = ["predict", "--checkpoint", str(checkpoint), "--input", str(folder), "--boxes", str(boxes),
            "--out", str(out), "--draw-boxes", "--heatmaps", "--no-progress", "--set", "test.in_vis_thre=0"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed == (f"darkpose predict: {len(dets)} persons in 10 images (0 skipped), drawn into {out}; "
                       f"results: {out / 'results.json'}\n")
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == len(dets) and {r["category_id"] for r in rows} == {1}
    assert sorted(r["image_id"] for r in rows) == sorted(d["image_id"] for d in dets)
    for r in rows:  # rescored as darkpose test: box score x mean keypoint score above in_vis_thre
        s = np.array(r["keypoints"][2::3])
        assert (s > 0).any() and r["score"] == pytest.approx(0.5 * s[s > 0].mean(), rel=1e-12)
    gt = COCO(str(coco_mini / ANN))
    res = gt.loadRes(str(out / "results.json"))  # pycocotools accepts it
    assert len(res.getAnnIds()) == len(dets)
    listed = json.loads((out / "images.json").read_text())
    assert listed == [{"id": im["id"], "file_name": im["file_name"]}
                      for im in sorted(images, key=lambda im: im["file_name"])]
    for im in images:  # drawn, same names and sizes, not the photo itself
        drawn = cv2.imread(str(out / im["file_name"]))
        photo = cv2.imread(str(folder / im["file_name"]))
        assert drawn.shape == photo.shape and np.abs(drawn.astype(int) - photo).mean() > 0.5
    before = (out / "results.json").read_bytes()
    assert main(argv) == 2  # nothing replaced unasked
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == before
    assert main([*argv, "--overwrite"]) == 0


def test_a_bad_image_in_a_folder_is_reported_and_skipped(checkpoint, photos, tmp_path, capsys):
    folder, _, images, _ = photos
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(folder), "--out", str(out),
                 "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert f"darkpose predict: skipped {folder / 'broken.jpg'}: truncated JPEG" in captured.err
    assert "10 persons in 10 images (1 skipped)" in captured.out  # no boxes: one per whole image
    assert not (out / "broken.jpg").exists()
    assert all((out / im["file_name"]).is_file() for im in images)
    rows = json.loads((out / "results.json").read_text())
    ids = [e["id"] for e in json.loads((out / "images.json").read_text())]
    assert len(rows) == 10 and sorted(r["image_id"] for r in rows) == ids
    assert ids == list(range(10))  # the running index in file order; broken.jpg, last, was 10


def test_a_box_that_cannot_be_cropped_skips_its_image_only(checkpoint, photos, tmp_path, capsys):
    folder, boxes, images, dets = photos
    first = sorted(images, key=lambda im: im["file_name"])[0]
    boxes.write_text(json.dumps([*dets, {"image_id": first["id"], "bbox": [0, 0, 1e30, 10], "score": 1}]))
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(folder), "--boxes", str(boxes),
                 "--out", str(out), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert f"skipped {folder / first['file_name']}: boxes[{sum(d['image_id'] == first['id'] for d in dets)}]: " \
           "expected finite coordinates within +-2**24 px, got [0.0, 0.0, 1e+30, 10.0]\n" in captured.err
    assert "9 images (1 skipped)" in captured.out and not (out / first["file_name"]).exists()
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == sum(d["image_id"] != first["id"] for d in dets)


def test_predict_on_a_video_keeps_frames_and_fps(checkpoint, tmp_path, capsys):
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 12.0, (48, 64))
    rng = np.random.default_rng(0)
    for _ in range(10):
        writer.write(rng.integers(0, 256, (64, 48, 3), dtype=np.uint8))
    writer.release()
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(video), "--out", str(out),
                 "--smooth", "--no-progress"]) == 0
    assert "10 frames at the input's frame rate" in capsys.readouterr().out
    drawn = cv2.VideoCapture(str(out / "clip.mp4"))
    assert drawn.get(cv2.CAP_PROP_FPS) == 12.0
    count = 0
    while drawn.read()[0]:
        count += 1
    assert count == 10
    rows = json.loads((out / "results.json").read_text())
    assert [r["image_id"] for r in rows] == list(range(10))
    assert json.loads((out / "images.json").read_text())[3] == {"id": 3, "frame": 3, "time_s": 0.25}
    plain = tmp_path / "plain"
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(video), "--out", str(plain),
                 "--no-progress"]) == 0
    raw = json.loads((plain / "results.json").read_text())
    assert raw[0]["keypoints"] == rows[0]["keypoints"]  # the first frame passes the filter as it is
    assert all(a["keypoints"] != b["keypoints"] for a, b in zip(raw[1:], rows[1:], strict=True))


def test_predict_with_an_onnx_detector_on_images_and_video(checkpoint, tmp_path, capsys):
    # a graph with NMS inside: one person at (8, 4)-(40, 60) of its 64x64 input, score 0.8,
    # another class, and a person under the box threshold
    rows = np.array([[8, 4, 40, 60, 0.8, 0], [0, 0, 9, 9, 0.9, 3], [1, 1, 5, 5, 0.3, 0]], np.float32)
    detector = constant_graph(tmp_path / "det.onnx", rows)
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.full((128, 96, 3), 90, np.uint8))  # letterboxed at r = 0.5
    out = tmp_path / "out"
    argv = ["predict", "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress", "--detector",
            str(detector), "--draw-boxes", "--set", "test.in_vis_thre=0"]
    assert main([*argv, "--input", str(image)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert len(results) == 1 and results[0]["image_id"] == 0
    s = np.array(results[0]["keypoints"][2::3])
    assert results[0]["score"] == pytest.approx(0.8 * s[s > 0].mean(), rel=1e-6)
    drawn = cv2.imread(str(out / "a.png"))
    assert (drawn[8, 16:80] != 90).any(axis=1).all()  # the box (16, 8)-(80, 120) drawn, top edge
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (96, 128))
    for _ in range(3):
        writer.write(np.full((128, 96, 3), 90, np.uint8))
    writer.release()
    assert main([*argv, "--input", str(video), "--overwrite", "--smooth"]) == 0
    assert [r["image_id"] for r in json.loads((out / "results.json").read_text())] == [0, 1, 2]
    assert "3 frames" in capsys.readouterr().out


def test_bad_inputs_are_one_line_naming_the_file(checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    base = ["predict", "--checkpoint", str(checkpoint), "--out", str(out), "--no-progress"]
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((20, 20, 3), np.uint8))
    empty = tmp_path / "empty"
    empty.mkdir()
    other = save_checkpoint(build_model("hrnet_tiny", 16), tmp_path / "k16.pth",
                            meta={"config": json.loads(json.dumps(config_to_dict(apply_overrides(
                                Config(), ["model.name=hrnet_tiny", "input.image_size=[48, 64]"]))))})
    odd = tmp_path / "odd.onnx"
    constant_graph(odd, np.zeros((1, 10, 3), np.float32))
    cases = [
        (["--input", str(broken)], f"{broken}: could not be opened as a video"),
        (["--input", str(tmp_path / "none.jpg")], f"--input: not found: {tmp_path / 'none.jpg'}"),
        (["--input", str(empty)], f"--input {empty}: no image files"),
        (["--input", str(image), "--detector", str(odd)], f"{odd}: unknown detector output form"),
        (["--input", str(image), "--boxes", str(tmp_path / "no.json")], "detection results file not found"),
    ]
    for extra, message in cases:
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith(f"darkpose predict: {message}") and err.count("\n") == 1, err
    assert main(["predict", "--checkpoint", str(other), "--input", str(image), "--out", str(out)]) == 2
    assert f"{other}: not a checkpoint of model.name='hrnet_tiny' with 17 keypoints" in capsys.readouterr().err
    # a file not named by its image id, with --boxes: reported and skipped
    boxes = tmp_path / "dets.json"
    boxes.write_text("[]")
    assert main([*base, "--input", str(image), "--boxes", str(boxes)]) == 1
    assert f"skipped {image}: no image id: with --boxes the image files are named" in capsys.readouterr().err



def test_predict_covariance_field(checkpoint, photos, tmp_path):
    from darkpose.commands.predict import covariance_entries

    folder, boxes, _, dets = photos
    base = ["predict", "--checkpoint", str(checkpoint), "--input", str(folder), "--boxes", str(boxes),
            "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "plain")]) == 0
    assert main([*base, "--out", str(tmp_path / "cov"), "--covariance"]) == 0
    plain = json.loads((tmp_path / "plain" / "results.json").read_text())
    rows = json.loads((tmp_path / "cov" / "results.json").read_text(),
                      parse_constant=lambda c: pytest.fail(f"{c} in the JSON"))
    assert all("keypoint_covariance" not in r for r in plain)
    assert [r["keypoints"] for r in rows] == [r["keypoints"] for r in plain] and len(rows) == len(dets)
    for r in rows:
        cov = r["keypoint_covariance"]
        assert len(cov) == 3 * 17
        for var_x, cov_xy, var_y in zip(cov[::3], cov[1::3], cov[2::3], strict=True):
            assert (var_x is None) == (cov_xy is None) == (var_y is None)
            if var_x is not None:
                assert var_x > 0 and var_y > 0 and cov_xy**2 <= var_x * var_y
    # an unknown keypoint is null, a known one its three numbers
    inf = np.inf
    entries = covariance_entries(np.array([[[inf, 0.0], [0.0, inf]], [[4.0, -1.0], [-1.0, 9.0]]], np.float32))
    assert entries == [None, None, None, 4.0, -1.0, 9.0]
