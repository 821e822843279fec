"""Heatmap losses against hand-computed values and the reference's joint-by-joint definition."""

from __future__ import annotations

import pytest
import torch

from darkpose.losses import JointsMSELoss, JointsOHKMMSELoss, joints_mse_per_joint

# N=1, K=2, H=1, W=2
PRED = torch.tensor([[[[1.0, 2.0]], [[0.0, 0.0]]]])
TARGET = torch.tensor([[[[0.0, 0.0]], [[1.0, 1.0]]]])
WEIGHT = torch.tensor([[1.0, 0.5]])


def test_joints_mse_by_hand():
    # joint 0: 0.5 * mean(1^2, 2^2) = 1.25; joint 1: 0.5 * mean(0.5^2, 0.5^2) = 0.125
    assert JointsMSELoss()(PRED, TARGET, WEIGHT).item() == pytest.approx(0.6875, abs=0)
    # unweighted: joint 1 is 0.5 * 1 = 0.5
    assert JointsMSELoss(use_target_weight=False)(PRED, TARGET).item() == 0.875
    # weights given but not used
    assert JointsMSELoss(use_target_weight=False)(PRED, TARGET, WEIGHT).item() == 0.875
    # (N, K, 1) weights, as the reference's data loader gives them
    assert JointsMSELoss()(PRED, TARGET, WEIGHT[..., None]).item() == 0.6875
    torch.testing.assert_close(
        joints_mse_per_joint(PRED, TARGET, WEIGHT), torch.tensor([[1.25, 0.125]])
    )


def test_invisible_joint_contributes_nothing():
    weight = torch.tensor([[1.0, 0.0]])
    assert JointsMSELoss()(PRED, TARGET, weight).item() == 0.625  # (1.25 + 0) / 2


def reference_loss(pred, target, weight):
    """The reference's loop: mean over joints of 0.5 * MSE(pred_j * w_j, target_j * w_j)."""
    n, k = pred.shape[:2]
    mse = torch.nn.MSELoss(reduction="mean")
    p, t = pred.reshape(n, k, -1), target.reshape(n, k, -1)
    total = 0.0
    for j in range(k):
        w = weight[:, j].reshape(n, 1)
        total = total + 0.5 * mse(p[:, j] * w, t[:, j] * w)
    return total / k


def test_joints_mse_equals_reference_loop():
    g = torch.Generator().manual_seed(0)
    pred = torch.rand(4, 17, 16, 12, generator=g, dtype=torch.float64)
    target = torch.rand(4, 17, 16, 12, generator=g, dtype=torch.float64)
    weight = (torch.rand(4, 17, generator=g, dtype=torch.float64) > 0.3) * 1.5
    torch.testing.assert_close(
        JointsMSELoss()(pred, target, weight), reference_loss(pred, target, weight),
        rtol=1e-12, atol=0,
    )


def test_ohkm_by_hand():
    # N=2, K=3, one pixel: per-joint losses 0.5 * d^2
    pred = torch.tensor([[1.0, 2.0, 3.0], [0.0, 4.0, 2.0]]).reshape(2, 3, 1, 1)
    target = torch.zeros(2, 3, 1, 1)
    weight = torch.ones(2, 3)
    # sample 0: 0.5, 2, 4.5 -> top 2 mean 3.25; sample 1: 0, 8, 2 -> 5; batch mean 4.125
    assert JointsOHKMMSELoss(topk=2)(pred, target, weight).item() == 4.125
    # top 1: 4.5 and 8 -> 6.25; top 3 equals the plain loss
    assert JointsOHKMMSELoss(topk=1)(pred, target, weight).item() == 6.25
    plain = JointsMSELoss()(pred, target, weight)
    torch.testing.assert_close(JointsOHKMMSELoss(topk=3)(pred, target, weight), plain)
    # a zero weight removes the joint from the mining: sample 1 becomes 0, 0, 2
    weight[1, 1] = 0
    assert JointsOHKMMSELoss(topk=2)(pred, target, weight).item() == (3.25 + 1.0) / 2


def test_ohkm_default_topk_is_8():
    assert JointsOHKMMSELoss().topk == 8
    with pytest.raises(ValueError, match="topk=8 is more than the 3 joints"):
        JointsOHKMMSELoss()(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2), torch.ones(1, 3))


def test_stacks_are_summed():
    second = PRED * 2  # joint 0: 0.5 * mean(4, 16) = 5; joint 1: 0.125 -> 2.5625
    loss = JointsMSELoss()([PRED, second], TARGET, WEIGHT)
    assert loss.item() == 0.6875 + 2.5625
    assert JointsMSELoss()((PRED,), TARGET, WEIGHT).item() == 0.6875
    ohkm = JointsOHKMMSELoss(topk=1)([PRED, second], TARGET, WEIGHT)
    assert ohkm.item() == 1.25 + 5.0


def test_gradient_of_weighted_loss():
    pred = PRED.clone().requires_grad_(True)
    JointsMSELoss()(pred, TARGET, WEIGHT).backward()
    # d/dp of mean over 4 values of 0.5 * w^2 (p - t)^2 = w^2 (p - t) / 4
    expected = torch.tensor([[[[0.25, 0.5]], [[-0.0625, -0.0625]]]])
    torch.testing.assert_close(pred.grad, expected)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"differ in shape: \(1, 2, 1, 2\) vs \(1, 2, 2, 2\)"):
        JointsMSELoss()(PRED, torch.zeros(1, 2, 2, 2), WEIGHT)
    with pytest.raises(ValueError, match=r"target_weight must have shape \(1, 2\) or \(1, 2, 1\)"):
        JointsMSELoss()(PRED, TARGET, torch.ones(2))
    with pytest.raises(ValueError, match="needs target_weight"):
        JointsMSELoss()(PRED, TARGET)
    with pytest.raises(ValueError, match=r"pred must be \(N, K, H, W\)"):
        JointsMSELoss(use_target_weight=False)(PRED[0], TARGET[0])
    with pytest.raises(ValueError, match="empty list"):
        JointsMSELoss()([], TARGET, WEIGHT)
    with pytest.raises(ValueError, match="topk must be at least 1"):
        JointsOHKMMSELoss(topk=0)
