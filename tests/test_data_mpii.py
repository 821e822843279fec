"""MPII dataset in the official HRNet JSON format, on small files made here."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from darkpose.codec import decode
from darkpose.data import MpiiDataset, TopDownTransform, TransformConfig
from darkpose.evaluation.pckh import evaluate_pckh, load_pckh_ground_truth
from darkpose.geometry import transform_points


def joints16(offset: float) -> list[list[float]]:
    return [[10.0 + offset + i, 20.0 + 2 * i] for i in range(16)]


def make_mpii(root, entries=None):
    (root / "images").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / "000001.png"), np.full((120, 160, 3), 50, np.uint8))
    cv2.imwrite(str(root / "images" / "000002.png"), np.full((120, 160, 3), 90, np.uint8))
    if entries is None:
        entries = [
            {"image": "000001.png", "center": [81.0, 41.0], "scale": 0.4,
             "joints": joints16(0.0), "joints_vis": [1] * 8 + [0] * 8},
            {"image": "000001.png", "center": [101.0, 61.0], "scale": 0.0,
             "joints": joints16(1.0), "joints_vis": [1] * 16},
            {"image": "000002.png", "center": [61.0, 51.0], "scale": 0.5,
             "joints": joints16(2.0), "joints_vis": [1] * 16},
        ]
    path = root / "valid.json"
    path.write_text(json.dumps(entries))
    return path


def test_mpii_reference_conventions(tmp_path, caplog):
    ann = make_mpii(tmp_path)
    with caplog.at_level(logging.WARNING):
        ds = MpiiDataset(ann, tmp_path / "images")
    assert "skipped 1 entries with a non-positive scale" in caplog.text
    assert len(ds) == 2 and ds.num_skipped_degenerate == 1
    assert ds.annotation_ids.tolist() == [0, 2]  # index in the file, for PCKh order
    assert ds.image_ids.tolist() == [0, 1]
    # 1-based -> 0-based, centre moved down by 15 * scale, scale x 1.25 on both axes
    np.testing.assert_allclose(ds.centers[0], [80.0, 40.0 + 15 * 0.4])
    np.testing.assert_allclose(ds.scales[0], [0.5, 0.5])
    np.testing.assert_allclose(ds.keypoints[0, 3], [12.0, 25.0, 1.0])
    np.testing.assert_allclose(ds.keypoints[0, 12, 2], 0.0)
    np.testing.assert_allclose(ds.areas, [100.0**2, 125.0**2])
    item = ds[1]
    assert item.image.shape == (120, 160, 3)
    assert item.instance.keypoints.shape == (16, 3)


def test_mpii_test_split_without_joints(tmp_path):
    ann = make_mpii(tmp_path, [{"image": "000002.png", "center": [61.0, 51.0], "scale": 0.5}])
    ds = MpiiDataset(ann, tmp_path / "images")
    assert len(ds) == 1 and not ds.keypoints.any()


def test_mpii_bad_inputs(tmp_path):
    ann = make_mpii(
        tmp_path,
        [{"image": "000001.png", "center": [81.0, 41.0], "scale": 0.4,
          "joints": joints16(0.0)[:15], "joints_vis": [1] * 16}],
    )
    msg = r"valid\.json: entry 0: field 'joints' must be 16 \[x, y\] pairs, got 15 entries"
    with pytest.raises(ValueError, match=msg):
        MpiiDataset(ann, tmp_path / "images")
    ann.write_text(json.dumps([{"image": "000001.png", "scale": 0.4}]))
    with pytest.raises(ValueError, match=r"valid\.json: entry 0: missing field 'center'"):
        MpiiDataset(ann, tmp_path / "images")
    ann.write_text(json.dumps({"image": "x"}))
    with pytest.raises(ValueError, match=r"valid\.json: expected a JSON list"):
        MpiiDataset(ann, tmp_path / "images")
    ann.write_text("[{")
    with pytest.raises(ValueError, match=r"valid\.json: not valid JSON"):
        MpiiDataset(ann, tmp_path / "images")
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        MpiiDataset(ann, tmp_path / "imgs")
    ann = make_mpii(
        tmp_path,
        [{"image": "missing.png", "center": [81.0, 41.0], "scale": 0.4}],
    )
    ds = MpiiDataset(ann, tmp_path / "images")
    with pytest.raises(FileNotFoundError, match=r"image file not found: .*missing\.png"):
        ds[0]


def test_mpii_through_the_transform_and_back_into_pckh_order(tmp_path):
    from scipy.io import savemat

    # three entries, the middle one skipped (scale 0): predictions go back by file index
    joints = [[[40.0 + 5 * i, 20.0 + 4 * i] for i in range(16)],
              [[50.0, 50.0]] * 16,
              [[20.0 + 6 * i, 80.0 - 3 * i] for i in range(16)]]
    vis = [[1] * 9 + [0] + [1] * 6, [1] * 16, [1] * 16]  # entry 0: head top unlabelled
    entries = [
        {"image": "000001.png", "center": [81.0, 41.0], "scale": 0.4},
        {"image": "000001.png", "center": [101.0, 61.0], "scale": 0.0},
        {"image": "000002.png", "center": [61.0, 51.0], "scale": 0.5},
    ]
    for e, j, v in zip(entries, joints, vis, strict=True):
        e.update(joints=j, joints_vis=v)
    ann = make_mpii(tmp_path, entries)
    missing = 1 - np.array(vis).T  # (16, N); the skipped entry has nothing to score
    missing[:, 1] = 1
    corners = np.array([[[0.0, 0.0]] * 3, [[5.0, 5.0]] * 3]).transpose(0, 2, 1)  # (2, 2, N)
    savemat(tmp_path / "gt_valid.mat", {"pos_gt_src": np.array(joints).transpose(1, 2, 0),
                                        "jnt_missing": missing, "headboxes_src": corners})
    gt = load_pckh_ground_truth(tmp_path / "gt_valid.mat")
    # head size 0.6 * 5 * sqrt(2) = 4.24 px: PCKh@0.5 within 2.1 px, @0.1 within 0.42 px,
    # well under the 5 px between neighbouring joints, so any reordering scores below 100

    t = TopDownTransform(TransformConfig(image_size=(256, 256)), "mpii", train=False)
    ds = MpiiDataset(ann, tmp_path / "images", transform=t)
    assert ds.annotation_ids.tolist() == [0, 2]
    batch = [ds[i] for i in range(len(ds))]
    heatmaps = np.stack([s.target.numpy() for s in batch])
    coords, _ = decode(heatmaps, method="dark", blur_kernel=11)
    back = transform_points(coords, np.stack([s.meta.heatmap_to_image for s in batch]))
    predictions = np.zeros((3, 16, 2))
    predictions[ds.annotation_ids] = back

    labelled = gt.visible
    err = np.linalg.norm(predictions - gt.positions, axis=-1)[labelled]
    assert err.max() < 1e-3  # measured 7.1e-4 image px (the DARK decode at sigma 2)
    table = evaluate_pckh(predictions, gt)
    assert table == {name: 100.0 for name in table}
    assert list(table) == ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle",
                           "Mean", "Mean@0.1"]
    # the order is what is scored: the predictions of the two people swapped score nothing
    assert evaluate_pckh(predictions[[2, 1, 0]], gt)["Mean"] == 0.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"joints": "10 20"}, r"field 'joints' must be 16 \[x, y\] pairs, got str"),
        ({"joints": [["10", "20"]] * 16},
         r"field 'joints\[0\]' must hold finite numbers, got '10' at index 0"),
        ({"joints": [[10.0, 20.0]] * 15 + [[10.0, float("nan")]]},
         r"field 'joints\[15\]' must hold finite numbers, got nan at index 1"),
        ({"joints": [[10.0, 20.0, 1.0]] * 16}, r"field 'joints\[0\]' has 3 values, expected 2"),
        ({"joints_vis": ["1"] * 16}, r"field 'joints_vis' must hold finite numbers, got '1'"),
        ({"joints_vis": [1] * 15}, r"field 'joints_vis' has 15 values, expected 16"),
        ({"center": [81.0, float("inf")]}, r"field 'center' must hold finite numbers, got inf"),
        ({"center": "81 41"}, r"field 'center' must be a list of 2 numbers \[x, y\], got str"),
        ({"scale": float("nan")}, r"field 'scale' must be a finite number, got nan"),
        ({"scale": "0.4"}, r"field 'scale' must be int or float, got str"),
    ],
)
def test_mpii_bad_values(tmp_path, change, message):
    entry = {"image": "000001.png", "center": [81.0, 41.0], "scale": 0.4,
             "joints": joints16(0.0), "joints_vis": [1] * 16}
    ann = make_mpii(tmp_path, [{**entry, **change}])
    with pytest.raises(ValueError, match=rf"valid\.json: entry 0: {message}"):
        MpiiDataset(ann, tmp_path / "images")


def test_mpii_file_without_persons(tmp_path):
    ann = make_mpii(tmp_path, [{"image": "000001.png", "center": [81.0, 41.0], "scale": 0.0}])
    with pytest.raises(ValueError, match=r"valid\.json: no person instances: 1 entries, 1 with a "
                                         r"non-positive scale, 0 in excluded images"):
        MpiiDataset(ann, tmp_path / "images")
    ann.write_text("[]")
    with pytest.raises(ValueError, match=r"valid\.json: no person instances: 0 entries"):
        MpiiDataset(ann, tmp_path / "images")
