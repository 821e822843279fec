"""MPII dataset in the official HRNet JSON format, on small files made here."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from darkpose.data import MpiiDataset


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
    assert item["image"].shape == (120, 160, 3)
    assert item["keypoints"].shape == (16, 3)


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
