"""Reading images: truncated JPEGs, sizes against the annotation file, the scan for bad files."""

from __future__ import annotations

import json
import logging
import shutil

import cv2
import numpy as np
import pytest

from darkpose.data import CocoKeypointDataset, MpiiDataset, TopDownTransform, TransformConfig, read_image
from darkpose.data.image import check_images

ANN = "annotations/person_keypoints_train2017.json"
PHOTO = "000000535506.jpg"  # a coco-mini photo with kept persons


def truncated_copy(coco_mini, folder, fraction=1 / 3):
    folder.mkdir(parents=True, exist_ok=True)
    data = (coco_mini / "train2017" / PHOTO).read_bytes()
    (folder / PHOTO).write_bytes(data[: int(len(data) * fraction)])
    return folder / PHOTO


def test_truncated_jpeg_is_an_error_naming_the_file(coco_mini, tmp_path):
    path = truncated_copy(coco_mini, tmp_path / "img")
    # OpenCV alone decodes it (the missing rows grey), with a warning on stderr only
    assert cv2.imread(str(path)) is not None
    with pytest.raises(ValueError, match=rf"img[/\\]{PHOTO}: truncated JPEG"):
        read_image(path)
    # and through a dataset: the person of that photo cannot be read, the others can
    ds = CocoKeypointDataset(coco_mini / ANN, tmp_path / "img")
    i = ds.image_paths.index(path)
    with pytest.raises(ValueError, match=rf"{PHOTO}: truncated JPEG"):
        ds[i]


def test_complete_jpegs_read_as_opencv_decodes_them(coco_mini, tmp_path):
    original = coco_mini / "train2017" / PHOTO
    expected = cv2.imread(str(original), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    np.testing.assert_array_equal(read_image(original), expected)
    np.testing.assert_array_equal(read_image(original, "rgb"), expected[..., ::-1])
    # bytes after the end-of-image marker (e.g. a motion photo's video) are no truncation
    padded = tmp_path / "padded.jpg"
    padded.write_bytes(original.read_bytes() + b"\x00trailer\xff\xda\x00")
    np.testing.assert_array_equal(read_image(padded), expected)
    # every coco-mini photo is complete; a third of each is not, with or without a trailer
    for photo in sorted((coco_mini / "train2017").glob("*.jpg"))[:20]:
        data = photo.read_bytes()
        read_image(photo)
        for cut in (data[: len(data) // 3], data[: len(data) // 3] + b"trailer"):
            padded.write_bytes(cut)
            with pytest.raises(ValueError, match="truncated JPEG"):
                read_image(padded)


def test_other_unreadable_files(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty\.jpg: empty file"):
        read_image(empty)
    with pytest.raises(OSError, match=r"cannot be read"):
        read_image(tmp_path)
    png = tmp_path / "a.png"
    cv2.imwrite(str(png), np.full((60, 80, 3), 7, np.uint8))
    png.write_bytes(png.read_bytes()[:40])  # a truncated PNG: OpenCV refuses it itself
    with pytest.raises(ValueError, match=r"a\.png: could not be decoded"):
        read_image(png)


def test_decoded_size_must_match_the_annotation(coco_mini):
    path = coco_mini / "train2017" / PHOTO
    h, w = read_image(path).shape[:2]
    assert read_image(path, expected_size=(w, h)).shape == (h, w, 3)
    msg = rf"{PHOTO}: decoded image is {w}x{h} \(W x H\), the annotations give {w}x{h + 1}"
    with pytest.raises(ValueError, match=msg):
        read_image(path, expected_size=(w, h + 1))
    with pytest.raises(ValueError, match=rf"annotations give {w - 1}x{h}"):
        read_image(path, expected_size=(w - 1.0, float(h)))


def small_dataset(root, sizes):
    """Three PNG photos, one person each; ``sizes`` the (W, H) written into the JSON."""
    (root / "img").mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i, (w, h) in enumerate(sizes, 1):
        cv2.imwrite(str(root / "img" / f"{i}.png"), np.full((60, 80, 3), 40 * i, np.uint8))
        images.append({"id": i, "file_name": f"{i}.png", "width": w, "height": h})
        anns.append({"id": 10 + i, "image_id": i, "category_id": 1, "bbox": [10, 5, 30, 40],
                     "area": 900, "iscrowd": 0, "keypoints": [20, 10, 2] * 17})
    path = root / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "keypoints": [str(k) for k in range(17)]}]}))
    return path


def test_check_images_reports_bad_files_and_exclude_images_skips_them(coco_mini, tmp_path, caplog):
    ann = small_dataset(tmp_path, [(80, 60), (80, 61), (80, 60), (80, 60)])
    (tmp_path / "img" / "3.png").unlink()
    shutil.copy(truncated_copy(coco_mini, tmp_path / "cut"), tmp_path / "img" / "4.png")
    ds = CocoKeypointDataset(ann, tmp_path / "img")
    np.testing.assert_array_equal(ds.image_sizes, [[80, 60], [80, 61], [80, 60], [80, 60]])
    with caplog.at_level(logging.WARNING):
        bad = check_images(ds)
    img = tmp_path / "img"
    assert sorted(bad) == [img / "2.png", img / "3.png", img / "4.png"]
    assert bad[img / "2.png"].endswith("decoded image is 80x60 (W x H), the annotations give 80x61")
    assert bad[img / "3.png"] == f"image file not found: {img / '3.png'}"
    assert "4.png: truncated JPEG" in bad[img / "4.png"]
    assert caplog.text.count("bad image:") == 3
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        kept = CocoKeypointDataset(ann, img, exclude_images=bad)
    assert "left out 3 person instances of 3 excluded images" in caplog.text
    assert kept.annotation_ids.tolist() == [11]
    assert check_images(kept) == {}
    assert [kept[i].image.shape for i in range(len(kept))] == [(60, 80, 3)]
    with pytest.raises(ValueError, match=r"no person instances: 4 .* 0 of them with a degenerate box, 4 in excluded"):
        CocoKeypointDataset(ann, img, exclude_images=[img / "1.png", *bad])


def test_mpii_exclude_images(tmp_path):
    (tmp_path / "images").mkdir()
    entries = []
    for i in range(3):
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), np.zeros((40, 40, 3), np.uint8))
        entries.append({"image": f"{i}.png", "center": [20.0, 20.0], "scale": 0.1})
    (tmp_path / "images" / "1.png").write_bytes(b"broken")
    ann = tmp_path / "valid.json"
    ann.write_text(json.dumps(entries))
    ds = MpiiDataset(ann, tmp_path / "images")
    assert ds.image_sizes is None
    bad = check_images(ds)
    assert list(bad) == [tmp_path / "images" / "1.png"]
    kept = MpiiDataset(ann, tmp_path / "images", exclude_images=bad)
    assert kept.annotation_ids.tolist() == [0, 2]  # the file index, for PCKh order
    assert kept.image_ids.tolist() == [0, 1]


def test_a_sample_whose_photo_has_another_size_than_the_annotations_is_an_error(tmp_path):
    ann = small_dataset(tmp_path, [(80, 60), (81, 60)])
    ds = CocoKeypointDataset(ann, tmp_path / "img")
    assert ds[0].image.shape == (60, 80, 3)
    with pytest.raises(ValueError, match=r"2\.png: decoded image is 80x60 \(W x H\), the annotations give 81x60"):
        ds[1]
    with_transform = CocoKeypointDataset(ann, tmp_path / "img", transform=TopDownTransform(TransformConfig()))
    assert with_transform[0].image.shape == (3, 256, 192)
    with pytest.raises(ValueError, match=r"2\.png: decoded image is 80x60"):
        with_transform[(1, 1)]
