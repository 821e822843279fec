"""Synthetic people: deterministic files, valid COCO, labels that follow the drawing."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from darkpose.cli import main
from darkpose.data import CocoKeypointDataset
from darkpose.data.synthetic_people import draw_image, make_synthetic_dataset


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(root, 12, 4, seed=3)
    return root


def test_a_seed_writes_the_same_bytes(synthetic, tmp_path):
    make_synthetic_dataset(tmp_path / "again", 12, 4, seed=3)
    make_synthetic_dataset(tmp_path / "other", 12, 4, seed=4)
    a, b, c = _files(synthetic), _files(tmp_path / "again"), _files(tmp_path / "other")
    assert len(a) == 12 + 4 + 2 and a == b
    assert a.keys() == c.keys() and all(a[k] != c[k] for k in a)
    # image i of a split depends on (seed, split, i) only, not on how many are written
    fewer = tmp_path / "fewer"
    make_synthetic_dataset(fewer, 5, 1, seed=3)
    assert (fewer / "images/train/000000000005.jpg").read_bytes() == a["images/train/000000000005.jpg"]


def test_pycocotools_and_the_dataset_read_it(synthetic):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    for split, n_images in (("train", 12), ("val", 4)):
        ann = synthetic / f"annotations/person_keypoints_{split}.json"
        gt = COCO(str(ann))
        assert len(gt.getImgIds()) == n_images
        anns = gt.loadAnns(gt.getAnnIds())
        for image in gt.loadImgs(gt.getImgIds()):  # the JSON sizes are the files'
            photo = cv2.imread(str(synthetic / "images" / split / image["file_name"]))
            assert photo.shape[:2] == (image["height"], image["width"])
        results = [{"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"],
                    "score": 1.0} for a in anns]
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
        assert ev.stats[0] == pytest.approx(1.0)  # its own labels score AP 1
        ds = CocoKeypointDataset(ann, synthetic / "images" / split)
        assert len(ds) == sum(a["num_keypoints"] > 0 for a in anns) > n_images


def test_labels_follow_the_drawing(synthetic):
    raw = json.loads((synthetic / "annotations/person_keypoints_train.json").read_text())
    sizes = {im["id"]: (im["width"], im["height"]) for im in raw["images"]}
    for a in raw["annotations"]:
        kp = np.array(a["keypoints"]).reshape(17, 3)
        v = kp[:, 2]
        assert set(v) <= {0, 1, 2} and a["num_keypoints"] == int((v > 0).sum())
        assert (kp[v == 0, :2] == 0).all()
        w, h = sizes[a["image_id"]]
        inside = kp[v > 0, :2]
        assert ((inside >= -0.5) & (inside < [w - 0.5, h - 0.5])).all()
        x, y, bw, bh = a["bbox"]
        seen = kp[v == 2, :2]
        # a visible keypoint's pixel is one of the person's pixels, so inside its tight box
        assert ((seen >= [x - 0.5, y - 0.5]) & (seen < [x + bw - 0.5, y + bh - 0.5])).all()
        assert 0 < a["area"] <= bw * bh and a["iscrowd"] == 0


def test_occlusion_is_labelled():
    """Over many figures, some keypoints are covered (by the torso, the other arm, another
    figure): measured 17% v = 1 over 400 images (2% v = 0, 81% v = 2)."""
    flags = np.concatenate([p["keypoints"][:, 2] for i in range(60) for p in draw_image(0, "val", i)[1]])
    fraction = np.bincount(flags.astype(int), minlength=3) / len(flags)
    assert 0.08 < fraction[1] < 0.35, fraction
    assert fraction[2] > 0.6 and fraction[0] < 0.1


def test_bad_requests_are_refused(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="not empty"):
        make_synthetic_dataset(tmp_path / "full", 2, 1)
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep"
    make_synthetic_dataset(tmp_path / "full", 2, 1, overwrite=True)
    assert (tmp_path / "full" / "mine.txt").read_text() == "keep"
    with pytest.raises(ValueError, match="num_train: expected an integer >= 0"):
        make_synthetic_dataset(tmp_path / "a", -1, 1)
    with pytest.raises(ValueError, match="at least one image"):
        make_synthetic_dataset(tmp_path / "a", 0, 0)
    with pytest.raises(ValueError, match="seed"):
        make_synthetic_dataset(tmp_path / "a", 1, 1, seed=True)


def test_the_command(tmp_path, capsys):
    out = tmp_path / "syn"
    assert main(["make-synthetic", str(out), "--num-images", "4", "--seed", "1"]) == 0
    text = capsys.readouterr().out
    assert "train: 4 images" in text and "val: 1 images" in text
    assert (out / "annotations/person_keypoints_val.json").is_file()
    assert main(["make-synthetic", str(out), "--num-images", "4"]) == 2
    assert "not empty" in capsys.readouterr().err
