"""Evaluation: pycocotools AP wiring, rescoring, OKS NMS (hard, soft), MPII PCKh."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from scipy.io import savemat

from darkpose.evaluation import (
    PckhGroundTruth,
    evaluate_coco,
    evaluate_pckh,
    ground_truth_results,
    keypoint_results,
    load_coco_gt,
    load_pckh_ground_truth,
    oks_matrix,
    oks_nms,
    pckh_per_joint,
    rescore,
    soft_oks_nms,
)

ANN = "annotations/person_keypoints_train2017.json"


# -- COCO AP -----------------------------------------------------------------------------


def test_ground_truth_as_predictions_scores_one_on_coco_mini(coco_mini, tmp_path):
    results = ground_truth_results(coco_mini / ANN)
    assert len(results) == 86
    out = tmp_path / "res.json"
    stats = evaluate_coco(results, coco_mini / ANN, results_file=out)
    assert stats["AP"] == 1.0
    assert stats["AP50"] == stats["AP75"] == stats["APm"] == stats["APl"] == 1.0
    assert stats["AR"] == 1.0
    assert len(json.loads(out.read_text())) == 86
    with pytest.raises(FileExistsError, match="results file exists"):
        evaluate_coco(results, coco_mini / ANN, results_file=out)
    stats = evaluate_coco(results, coco_mini / ANN, results_file=out, overwrite=True)
    assert stats["AP"] == 1.0


def small_gt(tmp_path, k=17):
    kp = np.zeros((k, 3))
    kp[:, 0] = np.linspace(100, 160, k)
    kp[:, 1] = np.linspace(50, 250, k)
    kp[:, 2] = 2
    gt = {
        "images": [{"id": 5, "file_name": "x.jpg", "width": 400, "height": 300}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 1, "bbox": [90, 40, 80, 220],
             "area": 17600.0, "iscrowd": 0, "num_keypoints": k,
             "keypoints": kp.reshape(-1).tolist()}
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": [f"k{i}" for i in range(k)]}],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    return path, kp


def test_evaluate_coco_far_prediction_scores_zero(tmp_path):
    path, kp = small_gt(tmp_path)
    pred = kp.copy()
    pred[:, 2] = 1.0
    near = keypoint_results(pred[None], [5], nms="none")
    assert evaluate_coco(near, path)["AP"] == pytest.approx(1.0, abs=1e-12)
    pred[:, 0] += 200.0
    far = keypoint_results(pred[None], [5], nms="none")
    assert evaluate_coco(far, path)["AP"] == 0.0


def test_evaluate_coco_any_number_of_keypoints_with_sigmas(tmp_path):
    path, kp = small_gt(tmp_path, k=3)
    pred = kp.copy()
    pred[:, 0] += 3.0
    res = keypoint_results(pred[None], [5], nms="none")
    sig_wide, sig_narrow = np.full(3, 0.5), np.full(3, 0.001)
    assert evaluate_coco(res, path, sigmas=sig_wide)["AP"] == pytest.approx(1.0, abs=1e-12)
    assert evaluate_coco(res, path, sigmas=sig_narrow)["AP"] == 0.0


def test_evaluate_coco_bad_inputs(tmp_path):
    path, kp = small_gt(tmp_path)
    res = keypoint_results(np.concatenate([kp[None]] * 1), [99], nms="none")
    with pytest.raises(ValueError, match=r"1 predicted image ids are not in the annotations"):
        evaluate_coco(res, path)
    assert evaluate_coco([], path)["AP"] == 0.0
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        evaluate_coco(res, tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ValueError, match=r"bad\.json: not valid JSON"):
        evaluate_coco(res, bad)


# -- rescoring and NMS -------------------------------------------------------------------


def test_rescore():
    kp = np.zeros((2, 3, 3))
    kp[0, :, 2] = [0.1, 0.5, 0.9]
    kp[1, :, 2] = [0.1, 0.2, 0.15]  # none above 0.2
    np.testing.assert_allclose(rescore(kp, [0.8, 0.9], 0.2), [0.8 * 0.7, 0.0])


def test_oks_matrix_hand_computed():
    kp = np.array([[[0.0, 0.0]], [[2.0, 0.0]]])
    oks = oks_matrix(kp, np.array([100.0, 300.0]), sigmas=np.array([0.1]))
    # e = d^2 / (2 sigma)^2 / mean area / 2 = 4 / 0.04 / 200 / 2
    np.testing.assert_allclose(oks, [[1.0, np.exp(-0.25)], [np.exp(-0.25), 1.0]], rtol=1e-12)
    kp3 = np.array([[[0.0, 0.0, 0.9], [9.0, 9.0, 0.1]], [[2.0, 0.0, 0.9], [0.0, 0.0, 0.9]]])
    masked = oks_matrix(kp3, np.array([100.0, 300.0]), np.array([0.1, 0.1]), in_vis_thre=0.2)
    np.testing.assert_allclose(masked[0, 1], np.exp(-0.25), rtol=1e-12)  # only keypoint 0


def poses():
    rng = np.random.default_rng(0)
    a = np.column_stack([rng.uniform(100, 200, (17, 2)), np.ones(17)])
    b = a.copy()
    b[:, :2] += 0.5  # a near-duplicate of a
    c = a.copy()
    c[:, :2] += 150.0  # another person
    return np.stack([c, b, a]), np.array([0.7, 0.8, 0.9]), np.full(3, 100.0 * 200.0)


def test_oks_nms_drops_duplicates():
    kp, scores, areas = poses()
    assert oks_matrix(kp, areas)[1, 2] > 0.9
    assert oks_nms(kp, scores, areas, 0.9).tolist() == [2, 0]
    assert oks_nms(kp, scores, areas, 1.0).tolist() == [2, 1, 0]  # nothing above 1
    assert oks_nms(kp[:0], scores[:0], areas[:0]).tolist() == []


def test_soft_oks_nms_decays_duplicates_below_others():
    kp, scores, areas = poses()
    # b decays to 0.8 * exp(-oks^2 / 0.9) < 0.7, so c comes before it
    assert soft_oks_nms(kp, scores, areas, 0.9).tolist() == [2, 0, 1]
    assert soft_oks_nms(kp, scores, areas, 0.9, max_dets=2).tolist() == [2, 0]


def test_default_sigmas_are_cocos():
    from pycocotools.cocoeval import Params

    # every keypoint off by 1 px in x, areas 1: e = 1 / (2 sigma)^2 / 2 per keypoint, with
    # pycocotools' table of COCO's sigmas (an independent copy: equal to 1 ulp)
    kp = np.zeros((2, 17, 2))
    kp[1, :, 0] = 1.0
    sig = Params("keypoints").kpt_oks_sigmas
    expected = np.exp(-1.0 / (2 * sig) ** 2 / (1.0 + np.spacing(1)) / 2).mean()
    assert oks_matrix(kp, np.ones(2))[0, 1] == pytest.approx(expected, rel=1e-12)


def test_soft_oks_nms_decays_by_exp_of_minus_oks_squared_over_threshold():
    # a (score 1) and b (0.8) at OKS o = exp(-0.25) (hand computed as in
    # test_oks_matrix_hand_computed); c far from both (OKS 0, never decayed). b's decayed
    # score is 0.8 exp(-o^2 / t): c just above it comes before b, just below it after.
    kp = np.array([[[0.0, 0.0]], [[2.0, 0.0]], [[1000.0, 0.0]]])
    areas = np.array([100.0, 300.0, 200.0])
    sigmas = np.array([0.1])
    t = 0.9
    decayed = 0.8 * np.exp(-np.exp(-0.25) ** 2 / t)  # 0.4066
    for c, order in ((decayed * (1 + 1e-9), [0, 2, 1]), (decayed * (1 - 1e-9), [0, 1, 2])):
        scores = np.array([1.0, 0.8, c])
        assert soft_oks_nms(kp, scores, areas, t, sigmas).tolist() == order


def test_oks_nms_equal_scores_visit_the_later_pose_first():
    # the reference's scores.argsort()[::-1]: among equal scores the later index first
    kp, _, areas = poses()  # c, b, a: b and a near-duplicates, c another person
    kp = kp[[2, 0, 1]]  # a, c, b
    tied = np.full(3, 0.5)
    assert oks_nms(kp, tied, areas).tolist() == [2, 1]  # b kept (later than a), then c
    assert oks_nms(kp, tied, areas, 1.0).tolist() == [2, 1, 0]
    assert oks_nms(kp, np.array([0.5, 0.4, 0.5]), areas).tolist() == [2, 1]


def test_soft_oks_nms_equal_scores_follow_the_reference_order():
    # four tied poses; p2 a near-duplicate of p3, p0 and p1 far from everything (OKS 0,
    # so their scores stay exactly tied). The reference picks p3 (the last), decays p2,
    # then re-sorts [p2, p1, p0] with argsort()[::-1]: ties reverse their current order,
    # so p0 comes before p1, and p2 last.
    kp, _, _ = poses()
    a, far1, far2 = kp[2], kp[0].copy(), kp[0].copy()
    far1[:, :2] += 1000.0
    four = np.stack([far1, far2, a + [0.5, 0.5, 0.0], a])
    areas = np.full(4, 100.0 * 200.0)
    assert soft_oks_nms(four, np.ones(4), areas).tolist() == [3, 0, 1, 2]


@pytest.mark.parametrize("nms", ["oks", "soft"])
def test_keypoint_results_nms_uses_the_given_sigmas(nms):
    # two candidates 10 px apart in x and y (d^2 = 200), a third one far; areas 200 x 200.
    # OKS of the pair: 0.993 with sigmas 0.3, 0.0019 with sigmas 0.01, 0.776 with COCO's
    # (measured): the wide sigmas suppress b under hard NMS, the narrow ones let b come
    # before c under soft NMS (COCO's decay it below c).
    for k, coco in ((17, True), (5, False)):
        rng = np.random.default_rng(1)
        a = np.column_stack([rng.uniform(100, 300, (k, 2)), np.ones(k)])
        b = a + [10.0, 10.0, 0.0]
        c = a + [500.0, 0.0, 0.0]
        kp, scores, areas = np.stack([a, b, c]), np.array([0.9, 0.8, 0.7]), np.full(3, 4e4)
        wide, narrow = np.full(k, 0.3), np.full(k, 0.01)
        assert oks_matrix(kp, areas, wide)[0, 1] > 0.99
        assert oks_matrix(kp, areas, narrow)[0, 1] < 0.01

        def kept(sigmas, kp=kp, scores=scores, areas=areas):
            res = keypoint_results(kp, [7, 7, 7], scores, areas, nms=nms, sigmas=sigmas)
            return [round(r["score"], 6) for r in res]

        if nms == "oks":
            assert kept(wide) == [0.9, 0.7]
            assert kept(narrow) == [0.9, 0.8, 0.7]
        else:
            assert kept(narrow) == [0.9, 0.8, 0.7]
            assert kept(wide) == [0.9, 0.7, 0.8]
        if coco:
            assert 0.6 < oks_matrix(kp, areas)[0, 1] < 0.9  # 0.776 with COCO's sigmas
            assert kept(None) == ([0.9, 0.8, 0.7] if nms == "oks" else [0.9, 0.7, 0.8])


def test_keypoint_results_tied_scores_on_coco_mini_keep_the_later_pose_first(coco_mini):
    # ground-truth poses jittered by 2 px, all scores tied (as GT boxes give): OKS NMS
    # visits each image's poses later first. With a threshold that suppresses nothing the
    # results are each image's poses in reverse order. On coco-mini that order alone moves
    # AP from 0.80162 (forward) to 0.80153 (reverse, the reference's), measured.
    gt = ground_truth_results(coco_mini / ANN)
    kp = np.array([r["keypoints"] for r in gt]).reshape(len(gt), 17, 3)
    kp[..., :2] += np.random.default_rng(0).normal(0.0, 2.0, kp[..., :2].shape)
    ids = np.array([r["image_id"] for r in gt])
    areas = np.full(len(gt), 1e4)
    res = keypoint_results(kp, ids, None, areas, oks_thre=0.999, rescoring=False)
    rev = np.concatenate([np.flatnonzero(ids == i)[::-1] for i in dict.fromkeys(ids.tolist())])
    assert len(set(ids.tolist())) < len(ids)  # some images hold several people
    assert res == keypoint_results(kp[rev], ids[rev], nms="none", rescoring=False)


def test_keypoint_results_nms_is_per_image():
    kp, scores, areas = poses()
    kp = np.concatenate([kp, kp])
    ids = np.array([1, 1, 1, 2, 2, 2])
    res = keypoint_results(kp, ids, np.concatenate([scores, scores]), np.tile(areas, 2))
    assert [r["image_id"] for r in res] == [1, 1, 2, 2]
    assert len(res[0]["keypoints"]) == 51
    assert res[0]["score"] == pytest.approx(0.9)  # box score x mean keypoint score (1)
    soft = keypoint_results(kp, ids, np.concatenate([scores, scores]), np.tile(areas, 2),
                            nms="soft")
    assert len(soft) == 6
    with pytest.raises(ValueError, match="areas are required"):
        keypoint_results(kp, ids)


# -- PCKh --------------------------------------------------------------------------------


def write_gt_mat(path, pos0, missing, headboxes):
    """pos0: (N, 16, 2) 0-based -> the official layout (16, 2, N) 1-based."""
    savemat(
        str(path),
        {
            "pos_gt_src": np.transpose(pos0 + 1.0, (1, 2, 0)),
            "jnt_missing": missing.T.astype(np.float64),
            "headboxes_src": np.transpose(headboxes, (1, 2, 0)),
        },
    )


def pckh_case(tmp_path):
    n, k = 2, 16
    rng = np.random.default_rng(0)
    gt = rng.uniform(20, 200, (n, k, 2))
    missing = np.zeros((n, k))
    missing[1, 15] = 1
    # person 0: head box 30 x 40 -> diagonal 50 -> head size 30 -> 15 px at 0.5, 3 px at 0.1
    # person 1: head box 6 x 8 -> diagonal 10 -> head size 6 -> 3 px at 0.5, 0.6 px at 0.1
    heads = np.array([[[0.0, 0.0], [30.0, 40.0]], [[10.0, 10.0], [16.0, 18.0]]])
    err = np.zeros((n, k, 2))
    err[:, :, 0] = 2.0
    err[0, 9] = [0.0, 14.0]  # head: correct at 0.5 only
    err[0, 0] = [16.0, 0.0]  # right ankle: wrong
    err[1, 1] = [0.0, 3.0]  # exactly at the 0.5 threshold: correct (<=)
    err[1, 15] = [99.0, 0.0]  # not annotated: ignored
    path = tmp_path / "gt_valid.mat"
    write_gt_mat(path, gt, missing, heads)
    return path, gt + err


def test_pckh_table_hand_computed(tmp_path):
    path, pred = pckh_case(tmp_path)
    table = evaluate_pckh(pred, path)
    assert table["Head"] == 100.0
    assert table["Ankle"] == 75.0  # left ankle 2/2, right ankle 1/2
    for name in ("Shoulder", "Elbow", "Wrist", "Hip", "Knee"):
        assert table[name] == 100.0
    # 14 joints in the mean (pelvis, thorax out), 2 people, 1 missing: 27 visible, 26 correct
    assert table["Mean"] == pytest.approx(100 * 26 / 27)
    # at 0.1: person 0 has 12 of 14 within 3 px, person 1 none within 0.6 px
    assert table["Mean@0.1"] == pytest.approx(100 * 12 / 27)
    assert evaluate_pckh(pred, path, low_threshold=0.11)["Mean@0.11"] == pytest.approx(
        100 * 12 / 27
    )


def test_pckh_ground_truth_layout(tmp_path):
    path, _ = pckh_case(tmp_path)
    gt = load_pckh_ground_truth(path)
    assert gt.positions.shape == (2, 16, 2)
    np.testing.assert_allclose(gt.head_sizes, [30.0, 6.0])
    assert gt.visible.sum() == 31


def test_pckh_bad_inputs(tmp_path):
    path, pred = pckh_case(tmp_path)
    with pytest.raises(ValueError, match=r"predictions must be \(2, 16, 2\)"):
        evaluate_pckh(pred[:1], path)
    with pytest.raises(FileNotFoundError, match="PCKh ground-truth file not found"):
        evaluate_pckh(pred, tmp_path / "none.mat")
    savemat(str(tmp_path / "partial.mat"), {"pos_gt_src": np.zeros((16, 2, 2))})
    with pytest.raises(ValueError, match=r"partial\.mat: missing field 'jnt_missing'"):
        evaluate_pckh(pred, tmp_path / "partial.mat")
    savemat(
        str(tmp_path / "shape.mat"),
        {"pos_gt_src": np.zeros((16, 2, 2)), "jnt_missing": np.zeros((16, 3)),
         "headboxes_src": np.zeros((2, 2, 2))},
    )
    with pytest.raises(ValueError, match=r"shape\.mat: field 'jnt_missing' must be \(16, 2\)"):
        evaluate_pckh(pred, tmp_path / "shape.mat")


def test_load_coco_gt_names_the_file_and_field_of_a_malformed_annotation(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": 3}')
    with pytest.raises(ValueError, match=r"bad.json: 'images' must be a list of objects, got int"):
        load_coco_gt(bad)
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match=r"bad.json: expected a JSON object"):
        load_coco_gt(bad)


def test_pckh_zero_head_box_counts_a_perfect_prediction_as_a_miss_and_warns(tmp_path):
    path, pred = pckh_case(tmp_path)
    gt = load_pckh_ground_truth(path)
    gt = PckhGroundTruth(gt.positions, gt.visible, np.array([30.0, 0.0]))
    perfect = gt.positions.copy()
    with pytest.warns(UserWarning, match=r"1 ground-truth persons have a zero head box; "
                                         r"their 15 visible joints count as misses"):
        correct, visible = pckh_per_joint(perfect, gt)
    assert correct.sum() == 16 and visible.sum() == 31  # person 0 only
    with pytest.warns(UserWarning, match="zero head box"):
        table = evaluate_pckh(perfect, gt)
    assert table["Mean"] == pytest.approx(100 * 14 / 27)  # the reference's figure


def test_pckh_non_finite_predictions_are_misses_with_a_warning(tmp_path):
    path, _ = pckh_case(tmp_path)
    gt = load_pckh_ground_truth(path)
    pred = gt.positions.copy()
    pred[0, 0] = np.nan
    pred[1, 15] = np.inf  # not annotated: not counted, not warned
    with pytest.warns(UserWarning, match=r"1 predictions of visible joints are not finite"):
        correct, visible = pckh_per_joint(pred, gt)
    assert correct.tolist() == (visible - np.eye(16, dtype=int)[0]).tolist()


def test_pckh_table_without_visible_joints_reads_zero(tmp_path):
    path, pred = pckh_case(tmp_path)
    gt = load_pckh_ground_truth(path)
    none = PckhGroundTruth(gt.positions, np.zeros_like(gt.visible), gt.head_sizes)
    with pytest.warns(UserWarning, match=r"no visible joint for Head, Shoulder, Elbow, Wrist, "
                                         r"Hip, Knee, Ankle, Mean: reported as 0"):
        table = evaluate_pckh(gt.positions, none)
    assert table == dict.fromkeys(
        ["Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle", "Mean", "Mean@0.1"], 0.0
    )
    assert pckh_per_joint(gt.positions, none)[1].tolist() == [0] * 16
    # only the left wrist (15) hidden everywhere: the Wrist row is the right wrist's
    vis = gt.visible.copy()
    vis[:, 15] = False
    pred[:, 10] += [0.0, 10.0]  # right wrist: within 15 px for person 0, not 3 px for 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the Wrist row has a visible joint: no warning
        table = evaluate_pckh(pred, PckhGroundTruth(gt.positions, vis, gt.head_sizes))
    assert table["Wrist"] == 50.0


# -- bad input: non-finite predictions, malformed ground truth and results ---------------


def test_evaluate_coco_refuses_non_finite_predictions(tmp_path):
    # before: all-NaN keypoints scored AP 1.000 (pycocotools counts a NaN OKS as a match)
    path, kp = small_gt(tmp_path)
    res = keypoint_results(kp[None], [5], nms="none")
    out = tmp_path / "res.json"
    for v in (np.nan, np.inf):
        bad = [dict(res[0], keypoints=[v] * 51)]
        with pytest.raises(ValueError, match=r"results\[0\] \(image id 5\): field 'keypoints' "
                                             r"must be 51 finite numbers"):
            evaluate_coco(bad, path, results_file=out)
        with pytest.raises(ValueError, match=r"results\[0\] \(image id 5\): field 'score' "
                                             r"must be a finite number, got (nan|inf)"):
            evaluate_coco([dict(res[0], score=v)], path, results_file=out)
    assert not out.exists()


def test_keypoint_results_refuses_non_finite_predictions():
    kp, scores, areas = poses()
    ids = [3, 4, 4]
    for column in (0, 2):  # a coordinate, a keypoint score
        bad = kp.copy()
        bad[2, 5, column] = np.nan
        for nms in ("oks", "soft", "none"):
            with pytest.raises(ValueError, match=r"prediction 2 \(image id 4\): keypoints "
                                                 rf"must be finite, got nan at \[5, {column}\] \(1 of 3 such\)"):
                keypoint_results(bad, ids, scores, areas, nms=nms)
    with pytest.raises(ValueError, match=r"prediction 1 \(image id 4\): box score must be finite"):
        keypoint_results(kp, ids, [0.7, np.inf, 0.9], areas)
    for value, expected in ((np.nan, "finite"), (-1.0, "non-negative")):
        with pytest.raises(ValueError, match=rf"prediction 0 \(image id 3\): area must be {expected}"):
            keypoint_results(kp, ids, scores, [value, 1.0, 1.0])


@pytest.mark.parametrize("suppress", [oks_nms, soft_oks_nms])
def test_nms_refuses_non_finite_poses(suppress):
    # before: a NaN pose suppressed the others in its image
    kp, scores, areas = poses()
    bad = kp.copy()
    bad[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match=r"pose 0: keypoints must be finite"):
        suppress(bad, scores, areas)
    with pytest.raises(ValueError, match=r"pose 2: score must be finite, got nan \(1 of 3 such\)"):
        suppress(kp, [0.7, 0.8, np.nan], areas)
    with pytest.raises(ValueError, match=r"pose 1: area must be finite, got inf"):
        suppress(kp, scores, [1.0, np.inf, 1.0])
    with pytest.raises(ValueError, match=r"pose 1: area must be non-negative"):
        suppress(kp, scores, [1.0, -5.0, 1.0])
    with pytest.raises(ValueError, match=r"scores must have one value per pose \(3\)"):
        suppress(kp, scores[:2], areas)
    with pytest.raises(ValueError, match=r"sigmas must be positive finite numbers"):
        suppress(kp, scores, areas, sigmas=np.full(17, np.inf))


def edited_gt(tmp_path, edit, k=17):
    """small_gt with a second annotation (id 2), then ``edit(data)`` applied."""
    path, _ = small_gt(tmp_path, k)
    data = json.loads(path.read_text())
    data["annotations"].append(json.loads(json.dumps(data["annotations"][0])) | {"id": 2})
    edit(data)
    path.write_text(json.dumps(data))
    return path


GT_ERRORS = [
    (lambda d: d["annotations"][0].pop("id"),
     r"gt\.json: annotations\[0\]: missing field 'id', expected an integer"),
    (lambda d: d.pop("categories"), r"gt\.json: missing field 'categories'"),
    (lambda d: d["annotations"][1].update(keypoints=[1.0] * 48),
     r"gt\.json: annotations\[1\] \(id 2\): field 'keypoints' has 48 values, expected 51 "
     r"finite numbers \(3 x 17 keypoints of category 1\)"),
    (lambda d: d["annotations"][1]["keypoints"].__setitem__(4, float("nan")),
     r"annotations\[1\] \(id 2\): field 'keypoints' must be 51 finite numbers"),
    (lambda d: d["categories"][0].update(keypoints=["a"] * 16),
     r"annotations\[0\] \(id 1\): field 'keypoints' has 51 values, expected 48"),
    (lambda d: (d["categories"][0].pop("keypoints"),
                d["annotations"][1].update(keypoints=[1.0] * 48)),
     r"annotations\[1\] \(id 2\): .* expected 51 finite numbers \(3 x 17 keypoints as "
     r"annotations\[0\]\)"),
    (lambda d: d["annotations"][1].update(id=1), r"annotations\[1\] \(id 1\): duplicate annotation id"),
    (lambda d: d["annotations"][1].update(image_id=6), r"image_id 6 is not in 'images'"),
    (lambda d: d["annotations"][1].update(category_id=2), r"category_id 2 is not in 'categories'"),
    (lambda d: d["annotations"][0].pop("area"), r"annotations\[0\] \(id 1\): missing field 'area'"),
    (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), r"field 'bbox' has 3 values, expected 4"),
    (lambda d: d["annotations"][0].pop("num_keypoints"), r"missing field 'num_keypoints'"),
    (lambda d: d["annotations"][0].pop("iscrowd"), r"missing field 'iscrowd'"),
    (lambda d: d["images"][0].update(id="5"), r"images\[0\]: field 'id' must be an integer, got '5'"),
    (lambda d: d.update(annotations=[]), r"gt\.json: no annotations to evaluate against"),
]


@pytest.mark.parametrize("edit,message", GT_ERRORS)
def test_malformed_ground_truth_names_file_entry_and_field(tmp_path, edit, message):
    path = edited_gt(tmp_path, edit)
    with pytest.raises(ValueError, match=message):
        load_coco_gt(path)


def test_sigmas_must_match_the_ground_truths_keypoints(tmp_path):
    path, kp = small_gt(tmp_path, k=5)
    res = keypoint_results(kp[None], [5], nms="none")
    with pytest.raises(ValueError, match=r"gt\.json has 5 keypoints per annotation: pass sigmas"):
        evaluate_coco(res, path)
    with pytest.raises(ValueError, match=r"sigmas must have one value per keypoint \(5 keypoints "
                                         r"in .*gt\.json\), got shape \(3,\)"):
        evaluate_coco(res, path, sigmas=np.full(3, 0.05))
    assert evaluate_coco(res, path, sigmas=np.full(5, 0.05))["AP"] == pytest.approx(1.0, abs=1e-12)


RESULT_ERRORS = [
    (lambda r: r.pop("score"), r"results\[0\] \(image id 5\): missing field 'score', expected a "
                               r"finite number"),
    (lambda r: r.pop("image_id"), r"results\[0\]: missing field 'image_id', expected an integer"),
    (lambda r: r.update(image_id=5.0), r"results\[0\]: field 'image_id' must be an integer, got 5\.0"),
    (lambda r: r.update(keypoints=r["keypoints"][:48]),
     r"results\[0\] \(image id 5\): field 'keypoints' has 48 values, expected 51 finite numbers"),
    (lambda r: r.update(category_id=2),
     r"results\[0\] \(image id 5\): category_id 2 is not a category of the ground truth \[1\]"),
]


@pytest.mark.parametrize("edit,message", RESULT_ERRORS)
def test_malformed_results_name_the_entry_and_field(tmp_path, edit, message):
    path, kp = small_gt(tmp_path)
    res = keypoint_results(kp[None], [5], nms="none")
    edit(res[0])
    with pytest.raises(ValueError, match=message):
        evaluate_coco(res, path)


def test_evaluate_coco_takes_numpy_numbers(tmp_path):
    # before: TypeError from json.dump for an np.int64 image id
    path, kp = small_gt(tmp_path)
    res = [{"image_id": np.int64(5), "category_id": np.int32(1),
            "keypoints": kp.reshape(-1).astype(np.float32), "score": np.float32(0.5)}]
    out = tmp_path / "res.json"
    assert evaluate_coco(res, path, results_file=out)["AP"] == pytest.approx(1.0, abs=1e-12)
    written = json.loads(out.read_text())[0]
    assert written["image_id"] == 5 and written["score"] == 0.5
    with pytest.raises(TypeError, match="results must be a list of dicts"):
        evaluate_coco(res[0], path)


def test_keypoint_results_wrong_lengths_and_types():
    kp, scores, areas = poses()
    with pytest.raises(ValueError, match=r"image_ids must have one value per prediction \(3\), "
                                         r"got shape \(2,\)"):
        keypoint_results(kp, [1, 1], scores, areas)
    with pytest.raises(ValueError, match=r"areas must have one value per prediction \(3\), "
                                         r"got shape \(4,\)"):
        keypoint_results(kp, [1, 1, 1], scores, np.ones(4))
    with pytest.raises(ValueError, match=r"box_scores must have one value per prediction"):
        keypoint_results(kp, [1, 1, 1], scores[:1], areas)
    with pytest.raises(TypeError, match=r"image_ids must be integers, got dtype float64"):
        keypoint_results(kp, [1.0, 1.0, 2.0], scores, areas)
    with pytest.raises(ValueError, match=r"sigmas must have one value per keypoint \(17"):
        keypoint_results(kp, [1, 1, 1], scores, areas, sigmas=np.ones(5))
    res = keypoint_results(kp, np.array([1, 1, 2], dtype=np.int64), scores, areas)
    assert [type(r["image_id"]) for r in res] == [int, int, int]
