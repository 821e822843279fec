"""Heatmap losses: the joints MSE of the reference code, its hard-keypoint variant, stacks.

For predicted and target heatmaps P, T (N, K, H, W) and joint weights w (N, K):

    JointsMSELoss      = mean over n, k, pixels of  0.5 * (w[n,k] * (P - T))^2
    JointsOHKMMSELoss  = mean over n of  (1/topk) * sum of the topk largest over k of
                         l[n,k] = mean over pixels of 0.5 * (w[n,k] * (P - T))^2

which is what the reference computes joint by joint (mean over joints of 0.5 * MSE of pred*w
and target*w; the OHKM variant keeps each sample's ``topk`` hardest joints). A joint of weight
0 contributes nothing; a weight of 1.5 counts 2.25 times (the weight multiplies the heatmaps,
before squaring, as in the reference). Given a list or tuple of predictions (one per hourglass
stack) both losses return the sum over the list, each against the same target.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["JointsMSELoss", "JointsOHKMMSELoss", "joints_mse_per_joint"]


def joints_mse_per_joint(
    pred: Tensor, target: Tensor, target_weight: Tensor | None = None
) -> Tensor:
    """Per-sample, per-joint loss ``0.5 * mean over pixels of (w * (pred - target))^2``.

    Parameters
    ----------
    pred, target : Tensor
        (N, K, H, W) heatmaps.
    target_weight : Tensor, optional
        (N, K) or (N, K, 1) joint weights; None means all 1.

    Returns
    -------
    Tensor
        (N, K), in the dtype of ``pred`` promoted with ``target``.
    """
    if pred.dim() != 4:
        raise ValueError(f"pred must be (N, K, H, W) heatmaps, got shape {tuple(pred.shape)}")
    if pred.shape != target.shape:
        raise ValueError(
            f"pred and target heatmaps differ in shape: {tuple(pred.shape)} vs "
            f"{tuple(target.shape)}"
        )
    diff = (pred - target).flatten(2)  # (N, K, H*W)
    if target_weight is not None:
        n, k = pred.shape[:2]
        if target_weight.shape not in ((n, k), (n, k, 1)):
            raise ValueError(
                f"target_weight must have shape ({n}, {k}) or ({n}, {k}, 1) for heatmaps "
                f"{tuple(pred.shape)}, got {tuple(target_weight.shape)}"
            )
        diff = diff * target_weight.reshape(n, k, 1)
    return 0.5 * diff.square().mean(dim=2)


class JointsMSELoss(nn.Module):
    """Mean over joints of 0.5 * MSE(pred * w, target * w), the reference heatmap loss.

    Parameters
    ----------
    use_target_weight : bool
        Multiply both heatmaps by the joint weights (then ``target_weight`` is required).

    Call with ``pred`` (N, K, H, W) or a list/tuple of such (one per stack, summed),
    ``target`` (N, K, H, W) and ``target_weight`` (N, K) or (N, K, 1). Returns a scalar.
    """

    def __init__(self, use_target_weight: bool = True) -> None:
        super().__init__()
        self.use_target_weight = use_target_weight

    def reduce(self, per_joint: Tensor) -> Tensor:
        """(N, K) per-joint losses -> scalar."""
        return per_joint.mean()

    def forward(
        self,
        pred: Tensor | Sequence[Tensor],
        target: Tensor,
        target_weight: Tensor | None = None,
    ) -> Tensor:
        if self.use_target_weight and target_weight is None:
            raise ValueError(
                f"{type(self).__name__}(use_target_weight=True) needs target_weight (N, K)"
            )
        weight = target_weight if self.use_target_weight else None
        if isinstance(pred, (list, tuple)):
            if not pred:
                raise ValueError("pred is an empty list: expected one heatmap tensor per stack")
            losses = [self.reduce(joints_mse_per_joint(p, target, weight)) for p in pred]
            return torch.stack(losses).sum()
        return self.reduce(joints_mse_per_joint(pred, target, weight))


class JointsOHKMMSELoss(JointsMSELoss):
    """Online hard keypoint mining: per sample, the mean of the ``topk`` largest joint losses,
    averaged over the batch (joint losses as in :class:`JointsMSELoss`).

    Parameters
    ----------
    use_target_weight : bool
        As in :class:`JointsMSELoss`.
    topk : int
        Joints kept per sample (reference: 8); at most K.
    """

    def __init__(self, use_target_weight: bool = True, topk: int = 8) -> None:
        super().__init__(use_target_weight)
        if topk < 1:
            raise ValueError(f"topk must be at least 1, got {topk}")
        self.topk = topk

    def reduce(self, per_joint: Tensor) -> Tensor:
        k = per_joint.shape[1]
        if self.topk > k:
            raise ValueError(f"topk={self.topk} is more than the {k} joints of the heatmaps")
        return per_joint.topk(self.topk, dim=1).values.mean(dim=1).mean()
