"""COCO-format datasets: coco-mini, small files made here, and every bad input."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from darkpose.data import CocoKeypointDataset, TopDownTransform, TransformConfig, load_metadata
from darkpose.data.keypoint_metadata import metadata_from_dict
from darkpose.geometry import crop_affine, transform_points

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
    # the OKS NMS area of the reference, (200 s_w)(200 s_h), not the annotation's 52634.37
    assert inst.area == pytest.approx((498.58 * 0.75 * 1.25) * (498.58 * 1.25), rel=1e-12)
    np.testing.assert_allclose(ds.areas, np.prod(200 * ds.scales, axis=1), rtol=1e-12)
    assert inst.score == 1.0


def test_coco_mini_item_reads_the_photo_in_either_channel_order(coco_mini):
    rgb = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017")
    bgr = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", color="bgr")
    a, b = rgb[0], bgr[0]
    raw = json.loads((coco_mini / ANN).read_text())
    img = next(im for im in raw["images"] if im["id"] == a.instance.image_id)
    assert a.image.shape == (img["height"], img["width"], 3)
    assert a.image.dtype == np.uint8
    np.testing.assert_array_equal(a.image, b.image[..., ::-1])
    assert a.instance.keypoints.shape == (17, 3) and a.index == 0


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


@pytest.mark.parametrize("convention", ["darkpose", "hrnet"])
def test_detections_through_the_test_transform(coco_mini, tmp_path, convention):
    det = {"image_id": 535506, "category_id": 1, "bbox": [100.0, 120.0, 150.0, 300.0],
           "score": 0.9}
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([det]))
    size = (192, 256)
    t = TopDownTransform(TransformConfig(image_size=size, convention=convention), "coco",
                         train=False)
    ds = CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", image_size=size,
                             convention=convention, detections=path, transform=t)
    sample = ds[0]
    meta = sample.meta
    # the box padded to 3:4 (w 150 -> 225) and enlarged by 1.25, centred on the box
    extra = 1.0 if convention == "darkpose" else 0.0
    center = np.array([100 + (150 - extra) / 2, 120 + (300 - extra) / 2])
    np.testing.assert_allclose(meta.center, center)
    np.testing.assert_allclose(meta.scale, [225 / 200 * 1.25, 300 / 200 * 1.25])
    assert meta.score == 0.9 and meta.annotation_id == -1
    assert meta.area == pytest.approx(225 * 300 * 1.25**2, rel=1e-12)
    # the crop and the recovery are geometry's affines of that centre and scale
    scale = np.array([225 / 200 * 1.25, 300 / 200 * 1.25])
    np.testing.assert_allclose(
        meta.image_to_input, crop_affine(center, scale, 0.0, size, convention)[0], atol=1e-12
    )
    np.testing.assert_allclose(
        meta.heatmap_to_image,
        crop_affine(center, scale, 0.0, (48, 64), convention, inverse=True)[0], atol=1e-9,
    )
    # which put the centre at the crop's centre and the padded box's left and right edges on
    # its first and last pixel (darkpose) or its edges (hrnet)
    half = (225 * 1.25 - extra) / 2
    points = np.array([[center, center - [half, 0], center + [half, 0]]])
    out = np.array(size, dtype=float) - extra
    np.testing.assert_allclose(
        transform_points(points, meta.image_to_input[None]),
        [[out / 2, [0, out[1] / 2], [out[0], out[1] / 2]]], atol=1e-9,
    )
    # detections carry no keypoints: nothing to learn from, every target weight 0
    assert sample.target.shape == (17, 64, 48)
    assert not sample.target_weight.any() and not sample.target.any()


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
    assert item.image.shape == (60, 80, 3)
    np.testing.assert_array_equal(item.image[30, 40], [0, 0, 255])  # RGB of blue BGR


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
        ValueError, match=r"annotation id 10: field 'keypoints' has 6 values, expected 9"
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
    with pytest.raises(ValueError, match=r"dets\.json: detection \[0\]: field 'bbox' has 3 values"):
        CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", detections=path)
    path.write_text('{"image_id": 1}')
    with pytest.raises(ValueError, match=r"dets\.json: expected a JSON list"):
        CocoKeypointDataset(coco_mini / ANN, coco_mini / "train2017", detections=path)
    with pytest.raises(FileNotFoundError, match="detection results file not found"):
        CocoKeypointDataset(
            coco_mini / ANN, coco_mini / "train2017", detections=tmp_path / "none.json"
        )


GOOD_ANN = {"id": 10, "image_id": 1, "category_id": 7, "bbox": [10, 5, 30, 40], "area": 900,
            "iscrowd": 0, "keypoints": [20, 10, 2, 15, 30, 2, 30, 30, 1]}
NAN, INF = float("nan"), float("inf")


def assert_refused(tmp_path, message, **files):
    """``make_dataset(**files)``, refused by the loader with ``message`` after the file name."""
    ann = make_dataset(tmp_path, **files)
    with pytest.raises(ValueError, match=rf"ann\.json: {message}"):
        CocoKeypointDataset(ann, tmp_path / "img", metadata=tmp_path / "hands.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keypoints": [20, 10, 2, NAN, 30, 2, 30, 30, 1]},
         r"annotation id 10: field 'keypoints' must hold finite numbers, got nan at index 3"),
        ({"keypoints": [20, 10, 2, 15, 30, 2, 30, -INF, 1]},
         r"annotation id 10: field 'keypoints' must hold finite numbers, got -inf at index 7"),
        ({"keypoints": "20 10 2"}, r"annotation id 10: field 'keypoints' must be a list of 9"),
        ({"bbox": [10, 5, INF, 40]},
         r"annotation id 10: field 'bbox' must hold finite numbers, got inf at index 2"),
        ({"bbox": [NAN, 5, 30, 40]}, r"annotation id 10: field 'bbox' .* got nan at index 0"),
        ({"bbox": [10, 5, True, 40]}, r"annotation id 10: field 'bbox' .* got True at index 2"),
        ({"bbox": [INF, 5, -INF, 40]}, r"annotation id 10: field 'bbox' .* got inf at index 0"),
        ({"bbox": [10, 5, 10**400, 40]}, r"annotation id 10: field 'bbox' .* got 1000+ at index 2"),
        ({"area": NAN}, r"annotation id 10: field 'area' must be a finite number, got nan"),
        ({"area": INF}, r"annotation id 10: field 'area' must be a finite number, got inf"),
        ({"area": "900"}, r"annotation id 10: field 'area' must be int or float, got str"),
        ({"id": "10"}, r"annotations\[0\]: field 'id' must be int, got str"),
        ({"id": None}, r"annotations\[0\]: field 'id' must be int, got NoneType"),
        ({"id": True}, r"annotations\[0\]: field 'id' must be int, got bool"),
        ({"id": 2**70}, r"annotations\[0\]: field 'id' = 1180591620717411303424 does not fit"),
        ({"image_id": 2**70}, r"annotation id 10: field 'image_id' = 1180591620717411303424 "),
        ({"image_id": 1.0}, r"annotation id 10: field 'image_id' must be int, got float"),
    ],
)
def test_bad_annotation_values(tmp_path, change, message):
    assert_refused(tmp_path, message, annotations=[{**GOOD_ANN, **change}])


def test_annotation_without_id(tmp_path):
    ann = dict(GOOD_ANN)
    del ann["id"]
    assert_refused(tmp_path, r"annotations\[0\]: missing field 'id'", annotations=[ann])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"width": NAN}, r"images\[1\]: field 'width' must be a finite number, got nan"),
        ({"height": "60"}, r"images\[1\]: field 'height' must be int or float, got str"),
        ({"width": 0}, r"images\[1\]: 'width' and 'height' must be positive, got 0.0x60.0"),
        ({"id": "2"}, r"images\[1\]: field 'id' must be int, got str"),
        ({"id": 2**63}, r"images\[1\]: field 'id' = 9223372036854775808 does not fit in int64"),
        ({"id": 1}, r"images\[1\]: duplicate image id 1 \(also 'a\.png'\)"),
    ],
)
def test_bad_image_records(tmp_path, change, message):
    images = [{"id": 1, "file_name": "a.png", "width": 80, "height": 60},
              {"id": 2, "file_name": "b.png", "width": 80, "height": 60, **change}]
    assert_refused(tmp_path, message, annotations=[GOOD_ANN], images=images)


def test_duplicate_annotation_ids(tmp_path):
    other = {**GOOD_ANN, "image_id": 2}
    assert_refused(tmp_path, r"annotations\[1\]: duplicate annotation id 10",
                   annotations=[GOOD_ANN, other])


@pytest.mark.parametrize(
    ("category", "message"),
    [
        ({"id": 7, "keypoints": "head,left_hand,right_hand"},
         r"category 7: field 'keypoints' must be a list of keypoint names"),
        ({"id": 7, "keypoints": [1, 2, 3]},
         r"category 7: field 'keypoints' must be a list of keypoint names"),
        ({"id": "7", "keypoints": ["a", "b", "c"]}, r"category '7': field 'id' must be int"),
    ],
)
def test_bad_category(tmp_path, category, message):
    assert_refused(tmp_path, message, annotations=[GOOD_ANN], categories=[category])


def test_a_file_without_persons_is_an_error(tmp_path):
    crowd = {**GOOD_ANN, "iscrowd": 1}
    unlabelled = {**GOOD_ANN, "id": 11, "keypoints": [0] * 9}
    msg = (r"no person instances: 0 non-crowd annotations of category 7 with a "
           r"labelled keypoint, 0 of them with a degenerate box, 0 in excluded images")
    assert_refused(tmp_path, msg, annotations=[crowd, unlabelled])
    degenerate = {**GOOD_ANN, "bbox": [10, 5, 0, 40]}
    assert_refused(tmp_path, r"no person instances: 1 non-crowd .* 1 of them with a",
                   annotations=[degenerate])


@pytest.mark.parametrize(
    ("det", "message"),
    [
        ({"score": NAN}, r"detection \[1\]: field 'score' must be a finite number, got nan"),
        ({"score": INF}, r"detection \[1\]: field 'score' must be a finite number, got inf"),
        ({"score": "0.9"}, r"detection \[1\]: field 'score' must be int or float, got str"),
        ({"bbox": [1, 2, NAN, 4]}, r"detection \[1\]: field 'bbox' .* got nan at index 2"),
        ({"bbox": [1, INF, 3, 4]}, r"detection \[1\]: field 'bbox' .* got inf at index 1"),
        ({"image_id": "1"}, r"detection \[1\]: field 'image_id' must be int, got str"),
    ],
)
def test_bad_detection_values(tmp_path, det, message):
    ann = make_dataset(tmp_path)
    good = {"image_id": 1, "category_id": 7, "bbox": [1, 2, 30, 40], "score": 0.9}
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([good, {**good, **det}]))
    with pytest.raises(ValueError, match=rf"dets\.json: {message}"):
        CocoKeypointDataset(ann, tmp_path / "img", metadata=tmp_path / "hands.json",
                            detections=path)


def test_no_detection_above_the_threshold_is_an_error(tmp_path):
    ann = make_dataset(tmp_path)
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([{"image_id": 1, "bbox": [1, 2, 30, 40], "score": 0.2}]))
    with pytest.raises(ValueError, match=r"ann\.json: no person instances: 0 detections in "
                                         r".*dets\.json with score >= 0\.5"):
        CocoKeypointDataset(ann, tmp_path / "img", metadata=tmp_path / "hands.json",
                            detections=path, det_score_threshold=0.5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sigmas": [0.026, INF, 0.062]}, r"field 'sigmas' must hold finite numbers, got inf at index 1"),
        ({"sigmas": [0.026, 0.062, NAN]}, r"field 'sigmas' must hold finite numbers, got nan at index 2"),
        ({"sigmas": [0.026, 0.0, 0.062]}, r"field 'sigmas' must be positive, got \[0.026, 0.0, 0.062\]"),
        ({"sigmas": [-0.026, 0.062, 0.062]}, r"field 'sigmas' must be positive"),
        ({"joint_weights": [1.0, INF, 1.5]}, r"field 'joint_weights' must hold finite numbers, got inf"),
        ({"joint_weights": [NAN, 1.5, 1.5]}, r"field 'joint_weights' must hold finite numbers, got nan"),
        ({"joint_weights": [1.0, -1.5, 1.5]}, r"field 'joint_weights' must not be negative"),
        ({"joint_weights": [1.0, 1e39, 1.5]}, r"field 'joint_weights' must be below 3.4e38"),
        ({"sigmas": "0.026"}, r"field 'sigmas' must be a list of 3 numbers \(one per keypoint\)"),
    ],
)
def test_metadata_values_must_be_finite(tmp_path, change, message):
    path = tmp_path / "meta.json"
    path.write_text(json.dumps({**HAND_META, **change}))
    with pytest.raises(ValueError, match=rf"meta\.json: {message}"):
        load_metadata(path)
    zero = metadata_from_dict({**HAND_META, "joint_weights": [1.0, 0.0, 1.5]})
    np.testing.assert_array_equal(zero.joint_weights, [1.0, 0.0, 1.5])  # 0: joint left out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"keypoints": None}, "missing field 'keypoints'"),
        ({"sigmas": [0.1, 0.1]}, "field 'sigmas' has 2 values, expected 3"),
        ({"flip_pairs": [["left_hand", "right_foot"]]}, "unknown keypoint name 'right_foot'"),
        ({"flip_pairs": [[1, 7]]}, "index 7 out of range for 3 keypoints"),
        ({"joint_weights": [1, "x", 1]}, "field 'joint_weights' must hold finite numbers"),
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

