"""Stacked hourglass network (Newell et al., ECCV 2016) for top-down pose estimation.

    stem: 7x7 conv stride 2, residual, max-pool, residual, residual      -> stride 4, C channels
    n stacks: hourglass -> residual(s) -> 1x1 conv (features) -> 1x1 conv (K heatmaps)
    between stacks: x <- x + 1x1(features) + 1x1(heatmaps)   ("remapping")

Each hourglass halves the resolution ``depth`` times (max-pool) and comes back up by
nearest-neighbour upsampling *to the size of the skip branch*, not by a fixed factor of 2, so
any input size works: 128x96, 256x192, 384x288 (whose stride-4 maps, 96x72, halve to odd
sizes), or anything else.

Output structure (the one choice a caller must know): in training mode ``forward`` returns a
list with the heatmaps of every stack, first to last, each (N, K, H/4, W/4), for intermediate
supervision (``JointsMSELoss`` sums over the list); in eval mode it returns only the last
stack's heatmaps, a tensor (N, K, H/4, W/4), like every other model here.
:meth:`StackedHourglass.forward_stacks` always returns the list.

There is no official DarkPose hourglass checkpoint; the layout here is this package's own.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["StackedHourglass", "hourglass"]


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1 (C/2), BN-ReLU-3x3 (C/2), BN-ReLU-1x1 (C),
    plus the input (through a 1x1 convolution when the width changes).

    Shapes: (N, in_channels, H, W) -> (N, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        mid = max(out_channels // 2, 1)
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1)
        self.relu = nn.ReLU(inplace=False)
        self.skip = None if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + (x if self.skip is None else self.skip(x))


def _residuals(channels: int, num_blocks: int) -> nn.Sequential:
    return nn.Sequential(*(Residual(channels, channels) for _ in range(num_blocks)))


class Hourglass(nn.Module):
    """One hourglass of ``depth`` levels: (N, C, H, W) -> (N, C, H, W) for any H, W >= 1.

    Each level: ``skip`` residuals at full size; beside them a 2x2 max-pool (rounding up),
    ``down`` residuals, the ``inner`` level (residuals at the deepest), ``up`` residuals and
    nearest upsampling to the skip's exact size; the two are summed.
    """

    def __init__(self, depth: int, channels: int, num_blocks: int = 1) -> None:
        super().__init__()
        self.skip = _residuals(channels, num_blocks)
        self.down = _residuals(channels, num_blocks)
        self.inner: nn.Module = (
            Hourglass(depth - 1, channels, num_blocks)
            if depth > 1
            else _residuals(channels, num_blocks)
        )
        self.up = _residuals(channels, num_blocks)

    def forward(self, x: Tensor) -> Tensor:
        skip = self.skip(x)
        # ceil_mode keeps a 1-pixel map alive (floor would make it empty at tiny inputs)
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2, 2, ceil_mode=True))))
        return skip + F.interpolate(low, size=skip.shape[-2:], mode="nearest")


class StackedHourglass(nn.Module):
    """Stacked hourglass with intermediate supervision; heatmaps at stride 4.

    Parameters
    ----------
    num_joints : int
        K, the number of heatmaps.
    num_stacks : int
        Number of hourglasses (the paper: 8; 4 is a common lighter setting).
    channels : int
        Width of the hourglasses (the paper: 256).
    num_blocks : int
        Residual modules per hourglass level and after each hourglass.
    depth : int
        Halvings per hourglass (the paper: 4, i.e. from stride 4 down to stride 64).

    Shapes: (N, 3, H, W) -> training: list of ``num_stacks`` tensors (N, K, H/4, W/4);
    eval: the last of them. H/4 and W/4 are rounded up (stride-2 convolution and ceil pooling).

    Convolutions keep PyTorch's default initialisation, except the heatmap heads: N(0, 0.001)
    weights and zero bias, as the other models' heads.
    """

    def __init__(
        self,
        num_joints: int = 17,
        num_stacks: int = 4,
        channels: int = 256,
        num_blocks: int = 1,
        depth: int = 4,
    ) -> None:
        super().__init__()
        for name, value in (("num_stacks", num_stacks), ("num_blocks", num_blocks),
                            ("depth", depth), ("channels", channels)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        self.num_joints = num_joints
        self.num_stacks = num_stacks
        quarter, half = max(channels // 4, 1), max(channels // 2, 1)
        self.stem = nn.Sequential(
            nn.Conv2d(3, quarter, 7, stride=2, padding=3),
            nn.BatchNorm2d(quarter),
            nn.ReLU(inplace=True),
            Residual(quarter, half),
            nn.MaxPool2d(2, 2, ceil_mode=True),
            Residual(half, half),
            Residual(half, channels),
        )
        self.hourglasses = nn.ModuleList(
            Hourglass(depth, channels, num_blocks) for _ in range(num_stacks)
        )
        self.features = nn.ModuleList(
            nn.Sequential(
                _residuals(channels, num_blocks),
                nn.Conv2d(channels, channels, 1),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            )
            for _ in range(num_stacks)
        )
        self.heads = nn.ModuleList(nn.Conv2d(channels, num_joints, 1) for _ in range(num_stacks))
        self.merge_features = nn.ModuleList(
            nn.Conv2d(channels, channels, 1) for _ in range(num_stacks - 1)
        )
        self.merge_heatmaps = nn.ModuleList(
            nn.Conv2d(num_joints, channels, 1) for _ in range(num_stacks - 1)
        )
        for head in self.heads:
            nn.init.normal_(head.weight, std=0.001)
            nn.init.zeros_(head.bias)

    def forward_stacks(self, x: Tensor) -> list[Tensor]:
        """(N, 3, H, W) -> list of ``num_stacks`` heatmap tensors (N, K, H/4, W/4)."""
        x = self.stem(x)
        outputs = []
        for s in range(self.num_stacks):
            features = self.features[s](self.hourglasses[s](x))
            heatmaps = self.heads[s](features)
            outputs.append(heatmaps)
            if s < self.num_stacks - 1:
                x = x + self.merge_features[s](features) + self.merge_heatmaps[s](heatmaps)
        return outputs

    def forward(self, x: Tensor) -> list[Tensor] | Tensor:
        """Training: the list of every stack's heatmaps; eval: the last stack's (N, K, H/4, W/4)."""
        outputs = self.forward_stacks(x)
        return outputs if self.training else outputs[-1]


def hourglass(
    num_joints: int = 17,
    *,
    num_stacks: int = 4,
    channels: int = 256,
    num_blocks: int = 1,
    depth: int = 4,
) -> StackedHourglass:
    """Build a :class:`StackedHourglass` (the parameters are the class's)."""
    return StackedHourglass(
        num_joints=num_joints,
        num_stacks=num_stacks,
        channels=channels,
        num_blocks=num_blocks,
        depth=depth,
    )
