"""Person boxes: the detection-results reader, box NMS and ONNX detectors of both output forms
(tiny graphs built here with onnx.helper)."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest

from darkpose.detection import OnnxPersonDetector, box_nms, read_detections
from onnx_graphs import constant_graph


def grid_output(classes: int = 2) -> np.ndarray:
    """YOLOX raw rows for a 64x64 input: 64 + 16 + 4 = 84 cells, all scores 0 but a few."""
    out = np.zeros((1, 84, 5 + classes), np.float32)
    # stride 8, cell (2, 3) = row 3 * 8 + 2: centre (2.5, 3.25) * 8 = (20, 26), size 2 x 4 cells
    out[0, 26, :4] = [0.5, 0.25, math.log(2), math.log(4)]
    out[0, 26, 4:7] = [0.9, 0.8, 0.1]  # person score 0.72
    # its neighbour (3, 3) on the same person, lower: suppressed by NMS (IoU 0.88)
    out[0, 27, :4] = [-0.25, 0.25, math.log(2), math.log(4)]
    out[0, 27, 4:7] = [0.9, 0.7, 0.1]
    # stride 32, cell (1, 0) = row 64 + 16 + 1: centre (48, 16), size 32 x 32; score 0.6
    out[0, 81, :4] = [0.5, 0.5, 0.0, 0.0]
    out[0, 81, 4:7] = [1.0, 0.6, 0.0]
    # stride 8, cell (0, 5): class 1 (not a person), confident
    out[0, 40, :4] = [0.5, 0.5, 0.0, 0.0]
    out[0, 40, 4:7] = [1.0, 0.1, 0.95]
    return out


IMAGE = np.zeros((128, 100, 3), np.uint8)  # letterboxed into 64x64 at r = 0.5: boxes x 2


def test_grid_form_is_decoded_and_nms_ed(tmp_path):
    det = OnnxPersonDetector(constant_graph(tmp_path / "yolox.onnx", grid_output()), score_threshold=0.3)
    assert det.form == "grid" and det.input_size == (64, 64)
    out = det(IMAGE)
    np.testing.assert_allclose(out.scores, [0.72, 0.6], rtol=1e-6)
    # (centre - size / 2, size) / r
    np.testing.assert_allclose(out.boxes, [[(20 - 8) * 2, (26 - 16) * 2, 32, 64], [64, 0, 64, 64]], atol=1e-5)
    assert len(det(IMAGE[:, :50])) == 2  # any image size
    # the suppressed neighbour comes back with a looser NMS; class 1 when it is the person
    assert len(OnnxPersonDetector(tmp_path / "yolox.onnx", score_threshold=0.3, nms_threshold=0.9)(IMAGE)) == 3
    other = OnnxPersonDetector(tmp_path / "yolox.onnx", score_threshold=0.3, person_class=1)(IMAGE)
    np.testing.assert_allclose(other.scores, [0.95])
    np.testing.assert_allclose(other.boxes, [[(0.5 * 8 - 4) * 2, (5.5 * 8 - 4) * 2, 16, 16]], atol=1e-5)


@pytest.mark.parametrize("batched", [False, True])
def test_boxes_form_with_nms_inside(tmp_path, batched):
    rows = np.array([[10, 20, 30, 60, 0.9, 0], [0, 0, 8, 8, 0.2, 0], [5, 5, 25, 25, 0.8, 2],
                     [40, 10, 60, 50, 0.55, 0]], np.float32)
    det = OnnxPersonDetector(constant_graph(tmp_path / "nms.onnx", rows[None] if batched else rows))
    assert det.form == "boxes"
    out = det(IMAGE)
    np.testing.assert_allclose(out.scores, [0.9, 0.55], rtol=1e-6)
    np.testing.assert_allclose(out.boxes, [[20, 40, 40, 80], [80, 20, 40, 80]], atol=1e-5)
    five = OnnxPersonDetector(constant_graph(tmp_path / "nms5.onnx", rows[:, :5]), score_threshold=0.1)(IMAGE)
    assert len(five) == 4  # no class column: every row is a person


def test_a_dynamic_input_needs_its_size(tmp_path):
    path = constant_graph(tmp_path / "dyn.onnx", np.zeros((0, 6)), input_shape=(1, 3, "h", "w"))
    with pytest.raises(ValueError, match=f"{tmp_path / 'dyn.onnx'}: the input size is dynamic .*input_size"):
        OnnxPersonDetector(path)
    det = OnnxPersonDetector(path, input_size=(96, 64))
    assert det.form == "boxes" and len(det(IMAGE)) == 0


@pytest.mark.parametrize(("values", "extra", "shapes"), [
    (np.zeros((1, 10, 3)), (), "[(1, 10, 3)]"),
    (np.zeros((1, 85, 7)), (), "[(1, 85, 7)]"),  # a grid of another input size
    (np.zeros((4, 6)), (("labels", [4, 6]),), "[(4, 6), (4, 6)]"),
])
def test_an_unknown_output_form_names_the_file_and_shapes(tmp_path, values, extra, shapes):
    path = constant_graph(tmp_path / "odd.onnx", values, extra_outputs=extra)
    with pytest.raises(ValueError) as e:
        OnnxPersonDetector(path)
    assert str(e.value).startswith(f"{path}: unknown detector output form: output shapes {shapes}; "
                                   "expected one output, YOLOX raw grid (1, 84, 5 + classes) for the 64x64")


def test_missing_and_broken_detector_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="detector file not found"):
        OnnxPersonDetector(tmp_path / "none.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=f"{bad}: not an ONNX model onnxruntime can run"):
        OnnxPersonDetector(bad)


def test_box_nms():
    # IoU of box 0 with 1: 90 / 110 = 0.82, with 2: 0, with 3: 1
    boxes = np.array([[0, 0, 10, 10], [1, 0, 10, 10], [20, 20, 5, 5], [0, 0, 10, 10]], float)
    np.testing.assert_array_equal(box_nms(boxes, [0.9, 0.8, 0.1, 0.5], 0.5), [0, 2])
    np.testing.assert_array_equal(box_nms(boxes, [0.9, 0.8, 0.1, 0.5], 0.85), [0, 1, 2])
    assert box_nms(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


def test_read_detections_filters_and_groups(tmp_path, caplog):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps([
        {"image_id": 5, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.9},
        {"image_id": 5, "category_id": 2, "bbox": [1, 2, 3, 4], "score": 0.9},
        {"image_id": 7, "bbox": [0, 0, 10, 20], "score": 0.5},
        {"image_id": 5, "category_id": 1, "bbox": [5, 5, 5, 5], "score": 0.1},
        {"image_id": 7, "category_id": 1, "bbox": [0, 0, 0, 20], "score": 0.8},
    ]))
    with caplog.at_level(logging.WARNING):
        dets = read_detections(path, score_threshold=0.3)
    assert sorted(dets) == [5, 7]
    np.testing.assert_array_equal(dets[5].boxes, [[1, 2, 3, 4]])
    np.testing.assert_array_equal(dets[7].scores, [0.5])
    assert f"{path}: left out 1 detections with a zero-size box" in caplog.text
    assert len(read_detections(path)[5]) == 2 and len(read_detections(path, category_id=None)[5]) == 3


@pytest.mark.parametrize(("content", "message"), [
    ({"a": 1}, "expected a JSON list of detections, got dict"),
    ([{"image_id": 1, "bbox": [1, 2, 3], "score": 1}], "detection [0]: field 'bbox' has 3 values, expected 4"),
    ([{"image_id": 1, "bbox": [1, 2, 3, 4]}], "detection [0]: missing field 'score'"),
    ([{"image_id": "a", "bbox": [1, 2, 3, 4], "score": 1}], "detection [0]: field 'image_id' must be int"),
])
def test_read_detections_names_bad_entries(tmp_path, content, message):
    path = tmp_path / "dets.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError) as e:
        read_detections(path)
    assert str(e.value).startswith(f"{path}: {message}")
