"""COCO-format datasets: coco-mini, small files made here, and every bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from darkpose.data import CocoKeypointDataset, load_metadata
from darkpose.data.keypoint_metadata import metadata_from_dict

ANN = "annotations/person_keypoints_train2017.json"


# -- coco-mini ---------------------------------------------------------------------------


def test_coco_mini_instances(coco_mini):
    ds = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017")
    # 172 person annotations: 5 crowd, 81 without a labelled keypoint, 86 kept.
    assert len(ds) == 86
    assert ds.num_skipped_degenerate == 0
    assert int((ds.keypoints[..., 2] > 0).sum()) == 800
    assert ds.keypoints.shape == (86, 17, 3)
    i = int(np.flatnonzero(ds.annotation_ids == 441444)[0])
    inst = ds.instance(i)
    assert inst.image_id == 535506
    assert inst.image_path == coco_mini / "train2017" / "000000535506.jpg"
    np.testing.assert_allclose(inst.box, [120.46, 133.32, 212.31, 498.58])
    np.testing.assert_allclose(inst.center, [120.46 + 211.31 / 2, 133.32 + 497.58 / 2])
    np.testing.assert_allclose(inst.scale, [498.58 * 0.75 / 200 * 1.25, 498.58 / 200 * 1.25])
    np.testing.assert_allclose(inst.keypoints[0], [281, 240, 2])
    assert inst.area == pytest.approx(52634.3678)
    assert inst.score == 1.0


def test_coco_mini_item_reads_the_photo_in_either_channel_order(coco_mini):
    rgb = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017")
    bgr = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", color="bgr")
    a, b = rgb[0], bgr[0]
    raw = json.loads((coco_mini / ANN).read_text())
    img = next(im for im in raw["images"] if im["id"] == a["image_id"])
    assert a["image"].shape == (img["height"], img["width"], 3)
    assert a["image"].dtype == np.uint8
    np.testing.assert_array_equal(a["image"], b["image"][..., ::-1])
    assert a["keypoints"].shape == (17, 3)


def test_coco_mini_hrnet_convention_centres(coco_mini):
    ds = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", convention="hrnet")
    i = int(np.flatnonzero(ds.annotation_ids == 441444)[0])
    # hrnet clean box is one pixel narrower (x2 - x1), centre x + w/2: the same centre.
    np.testing.assert_allclose(ds.boxes[i], [120.46, 133.32, 211.31, 497.58])
    np.testing.assert_allclose(ds.centers[i], [120.46 + 211.31 / 2, 133.32 + 497.58 / 2])


def test_coco_mini_detection_boxes(coco_mini, tmp_path, caplog):
    img_id = 535506
    dets = [
        {"image_id": img_id, "category_id": 1, "bbox": [100.0, 120.0, 150.0, 300.0], "score": 0.9},
        {"image_id": img_id, "category_id": 1, "bbox": [10.0, 12.0, 50.0, 80.0], "score": 0.3},
        {"image_id": img_id, "category_id": 2, "bbox": [10.0, 12.0, 50.0, 80.0], "score": 0.99},
        {"image_id": img_id, "category_id": 1, "bbox": [10.0, 12.0, 0.0, 80.0], "score": 0.95},
        {"image_id": 1, "category_id": 1, "bbox": [10.0, 12.0, 50.0, 80.0], "score": 0.95},
    ]
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(dets))
    with caplog.at_level(logging.INFO):
        ds = CocoKeypointDataset(
            coco_mini / ANN, coco_mini / "train2017", detections=path, det_score_threshold=0.5
        )
    assert len(ds) == 1
    assert ds.num_skipped_degenerate == 1
    assert "skipped 1 detections" in caplog.text  # the image not in the annotations
    assert "with a zero-area or degenerate box" in caplog.text
    inst = ds.instance(0)
    assert inst.score == 0.9 and inst.annotation_id == -1
    np.testing.assert_allclose(inst.center, [100 + 149 / 2, 120 + 299 / 2])
    np.testing.assert_allclose(inst.scale, [225 / 200 * 1.25, 300 / 200 * 1.25])
    assert inst.area == pytest.approx(225 * 300 * 1.25**2)
    assert not inst.keypoints.any()
    # threshold 0.0 (the reference IMAGE_THRE) keeps the low-score one too
    ds0 = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", detections=path)
    assert sorted(ds0.scores.tolist()) == [0.3, 0.9]


# -- a small dataset with its own keypoints ------------------------------------------------

HAND_META = {
    "name": "hands",
    "keypoints": ["head", "left_hand", "right_hand"],
    "flip_pairs": [["left_hand", "right_hand"]],
    "sigmas": [0.026, 0.062, 0.062],
    "joint_weights": [1.0, 1.5, 1.5],
    "upper_body": ["head"],
    "skeleton": [["head", "left_hand"], [0, 2]],
}


def make_dataset(root: Path, annotations=None, images=None, categories=None) -> Path:
    """Two small PNGs (lossless) and a 3-keypoint COCO-format annotation file."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    for name, color in [("a.png", (0, 0, 255)), ("b.png", (255, 0, 0))]:
        img = np.zeros((60, 80, 3), np.uint8)
        img[:] = color
        cv2.imwrite(str(root / "img" / name), img)
    images = images or [
        {"id": 1, "file_name": "a.png", "width": 80, "height": 60},
        {"id": 2, "file_name": "b.png", "width": 80, "height": 60},
    ]
    categories = categories or [
        {"id": 7, "name": "hand-person", "keypoints": ["head", "left_hand", "right_hand"]}
    ]
    if annotations is None:
        annotations = [
            {"id": 10, "image_id": 1, "category_id": 7, "bbox": [10, 5, 30, 40], "area": 900,
             "iscrowd": 0, "keypoints": [20, 10, 2, 15, 30, 2, 30, 30, 1]},
            {"id": 11, "image_id": 2, "category_id": 7, "bbox": [0, 0, 20, 20], "area": 300,
             "iscrowd": 0, "keypoints": [5, 5, 2, 0, 0, 0, 0, 0, 0]},
            {"id": 12, "image_id": 2, "category_id": 7, "bbox": [0, 0, 20, 20], "area": 300,
             "iscrowd": 0, "keypoints": [0, 0, 0, 0, 0, 0, 0, 0, 0]},
        ]
    ann = root / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations,
                               "categories": categories}))
    meta = root / "hands.json"
    meta.write_text(json.dumps(HAND_META))
    return ann


def test_generic_dataset_with_metadata_file(tmp_path):
    ann = make_dataset(tmp_path)
    ds = CocoKeypointDataset(ann, tmp_path / "img", metadata=tmp_path / "hands.json",
                             image_size=(64, 64))
    assert ds.metadata.num_keypoints == 3
    assert ds.metadata.flip_pairs == ((1, 2),)
    assert ds.metadata.skeleton == ((0, 1), (0, 2))
    assert ds.metadata.lower_body_ids == (1, 2)
    assert ds.category_id == 7
    assert len(ds) == 2  # annotation 12 has no labelled keypoint
    assert ds.annotation_ids.tolist() == [10, 11]
    np.testing.assert_allclose(ds.centers[0], [10 + 29 / 2, 5 + 39 / 2])
    np.testing.assert_allclose(ds.scales[0], [40 / 200 * 1.25, 40 / 200 * 1.25])
    item = ds[1]
    assert item["image"].shape == (60, 80, 3)
    np.testing.assert_array_equal(item["image"][30, 40], [0, 0, 255])  # RGB of blue BGR


def test_builtin_metadata():
    coco = load_metadata("coco")
    assert coco.num_keypoints == 17
    assert coco.flip_pairs == ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14),
                               (15, 16))
    assert coco.upper_body_ids == tuple(range(11))
    np.testing.assert_allclose(coco.sigmas[[0, 5, 11]], [0.026, 0.079, 0.107])
    np.testing.assert_allclose(coco.joint_weights[[7, 9, 13, 15, 0]], [1.2, 1.5, 1.2, 1.5, 1.0])
    assert len(coco.skeleton) == 19
    mpii = load_metadata("mpii")
    assert mpii.num_keypoints == 16
    assert mpii.flip_pairs == ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
    assert mpii.upper_body_ids == (7, 8, 9, 10, 11, 12, 13, 14, 15)
    np.testing.assert_array_equal(coco.flip_index()[:5], [0, 2, 1, 4, 3])


# -- bad input ---------------------------------------------------------------------------


def test_missing_image_folder(tmp_path):
    ann = make_dataset(tmp_path)
    with pytest.raises(FileNotFoundError, match="image folder not found: .*nowhere"):
        CocoKeypointDataset(ann, tmp_path / "nowhere", metadata=tmp_path / "hands.json")


def test_missing_image_file(tmp_path):
    ann = make_dataset(tmp_path)
    ds = CocoKeypointDataset(ann, tmp_path / "img", metadata=tmp_path / "hands.json")
    (tmp_path / "img" / "b.png").unlink()
    ds[0]
    with pytest.raises(FileNotFoundError, match=r"image file not found: .*img[/\\]b\.png"):
        ds[1]


def test_undecodable_image_file(tmp_path):
    ann = make_dataset(tmp_path)
    (tmp_path / "img" / "a.png").write_bytes(b"not a png")
    ds = CocoKeypointDataset(ann, tmp_path / "img", metadata=tmp_path / "hands.json")
    with pytest.raises(ValueError, match=r"a\.png: could not be decoded"):
        ds[0]


def test_missing_annotation_file(tmp_path):
    (tmp_path / "img").mkdir()
    with pytest.raises(FileNotFoundError, match="annotation file not found: .*absent.json"):
        CocoKeypointDataset(tmp_path / "absent.json", tmp_path / "img")


def test_malformed_json(tmp_path):
    make_dataset(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [\n  {"id": 1,}\n]}')
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON: .*line 2, column 12"):
        CocoKeypointDataset(bad, tmp_path / "img", metadata=tmp_path / "hands.json")


def test_missing_field(tmp_path):
    ann = make_dataset(tmp_path)
    raw = json.loads(ann.read_text())
    del raw["annotations"]
    ann.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"ann\.json: missing field 'annotations'"):
        CocoKeypointDataset(ann, tmp_path / "img", metadata=tmp_path / "hands.json")
    raw["annotations"] = []
    raw["images"][1] = {"id": 2, "width": 80, "height": 60}
    ann.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"ann\.json: images\[1\]: missing field 'file_name'"):
        CocoKeypointDataset(ann, tmp_path / "img", metadata=tmp_path / "hands.json")


def test_keypoint_list_of_wrong_length(tmp_path):
    ann = make_dataset(
        tmp_path,
        annotations=[
            {"id": 10, "image_id": 1, "category_id": 7, "bbox": [10, 5, 30, 40], "area": 900,
             "keypoints": [20, 10, 2, 15, 30, 2]},
        ],
    )
    with pytest.raises(
        ValueError, match=r"annotation id 10: 'keypoints' has 6 values, expected 9"
    ):
        CocoKeypointDataset(ann, tmp_path / "img", metadata=tmp_path / "hands.json")


def test_coco_metadata_against_a_three_keypoint_file(tmp_path):
    ann = make_dataset(tmp_path)
    with pytest.raises(ValueError, match="lists 3 keypoints, the metadata has 17"):
        CocoKeypointDataset(ann, tmp_path / "img")  # default metadata: coco


def test_degenerate_boxes_are_skipped_and_counted(tmp_path, caplog):
    kp = [20, 10, 2, 15, 30, 2, 30, 30, 1]
    ann = make_dataset(
        tmp_path,
        annotations=[
            {"id": 1, "image_id": 1, "category_id": 7, "bbox": [10, 5, 30, 40], "area": 900,
             "keypoints": kp},
            {"id": 2, "image_id": 1, "category_id": 7, "bbox": [10, 5, 0, 40], "area": 0,
             "keypoints": kp},
            {"id": 3, "image_id": 1, "category_id": 7, "bbox": [10, 5, 30, -4], "area": 10,
             "keypoints": kp},
            {"id": 4, "image_id": 1, "category_id": 7, "bbox": [500, 5, 30, 40], "area": 900,
             "keypoints": kp},
            {"id": 5, "image_id": 2, "category_id": 7, "bbox": [10, 5, 30, 40], "area": 0,
             "keypoints": kp},
        ],
    )
    with caplog.at_level(logging.WARNING):
        ds = CocoKeypointDataset(ann, tmp_path / "img", metadata=tmp_path / "hands.json")
    assert len(ds) == 1 and ds.annotation_ids.tolist() == [1]
    assert ds.num_skipped_degenerate == 4
    assert "skipped 4 annotations with a zero-area or degenerate box" in caplog.text


def test_bad_detection_file(coco_mini, tmp_path):
    path = tmp_path / "dets.json"
    path.write_text('[{"image_id": 1, "bbox": [1, 2, 3], "score": 1.0}]')
    with pytest.raises(ValueError, match=r"dets\.json: detection \[0\]: 'bbox' must be 4"):
        CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", detections=path)
    path.write_text('{"image_id": 1}')
    with pytest.raises(ValueError, match=r"dets\.json: expected a JSON list"):
        CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", detections=path)
    with pytest.raises(FileNotFoundError, match="detection results file not found"):
        CocoKeypointDataset(
            coco_mini / ANN, coco_mini / "train2017", detections=tmp_path / "none.json"
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keypoints": None}, "missing field 'keypoints'"),
        ({"sigmas": [0.1, 0.1]}, "field 'sigmas' has 2 values, expected 3"),
        ({"flip_pairs": [["left_hand", "right_foot"]]}, "unknown keypoint name 'right_foot'"),
        ({"flip_pairs": [[1, 7]]}, "index 7 out of range for 3 keypoints"),
        ({"joint_weights": [1, "x", 1]}, "field 'joint_weights' must be a list of 3 numbers"),
        ({"keypoints": ["a", "a", "b"]}, "duplicate names"),
        ({"flip_pairs": [[1, 2], [2, 0]]}, "one pair only"),
    ],
)
def test_bad_metadata(tmp_path, change, message):
    raw = dict(HAND_META)
    for key, value in change.items():
        if value is None:
            del raw[key]
        else:
            raw[key] = value
    path = tmp_path / "meta.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=rf"meta\.json: .*{message}"):
        load_metadata(path)


def test_metadata_defaults():
    m = metadata_from_dict({"keypoints": ["a", "b"], "flip_pairs": [], "sigmas": [0.1, 0.1]})
    np.testing.assert_array_equal(m.joint_weights, [1.0, 1.0])
    assert m.upper_body_ids == () and m.skeleton == () and m.flip_pairs == ()

