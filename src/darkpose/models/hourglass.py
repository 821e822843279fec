"""Stacked hourglass network (Newell et al., ECCV 2016) in the official DarkPose layout.

The modules, their order and so the state_dict keys and shapes are those of the official
DarkPose ``hourglass`` model (1298 tensors and 13,020,612 parameters with 4 stacks, 2526 and
25,598,472 with 8; the tests compare every name and shape with the official key files)::

    conv1 (7x7 stride 2) - bn1 - relu - layer1 - max-pool - layer2 - layer3   -> stride 4, C
    per stack s:  hg.s -> res.s -> fc.s (1x1 conv, BN, ReLU) -> score.s (K heatmaps)
    between stacks: x <- x + fc_.s(features) + score_.s(heatmaps)

Every residual is a pre-activation bottleneck (BN-ReLU-1x1, BN-ReLU-3x3, BN-ReLU-1x1, all
convolutions with bias) whose width doubles from its middle to its output; the shortcut is a
1x1 convolution (``downsample.0``) where the width changes. ``hg.s.hg.i`` is level ``i`` of the
hourglass, 0 the deepest: ``[0]`` the full-size skip branch, ``[1]`` the residuals after the
2x2 max-pool, ``[2]`` those before the upsampling, and at level 0 only ``[3]`` the residuals at
the bottom.

Sizes (our extension): the official hourglass halves with floor max-pooling and doubles with
nearest upsampling by 2, except the deepest upsampling which is fixed to 4x3, the 128x96
shapes; so it fails at 256x192 and 384x288. Here every level upsamples (nearest) to the exact
size of its skip branch, which is upsampling by 2 wherever the halving was exact and the
official 4x3 at 128x96: the same operations in the same order, so the same output at 128x96.
Two more extensions only act where the official cannot run: a side of 1 pixel is pooled to 1
(not to 0), and the stem's pooling rounds up on odd sizes (the official rounds down; they
agree on even ones), so the heatmaps are H/4 x W/4 rounded up, as every model here gives.

Output structure (the one choice a caller must know): in training mode ``forward`` returns a
list with the heatmaps of every stack, first to last, each (N, K, H/4, W/4), for intermediate
supervision (``JointsMSELoss`` sums over the list); in eval mode it returns only the last
stack's heatmaps, a tensor (N, K, H/4, W/4), like every other model here (the official returns
the list in both modes). :meth:`StackedHourglass.forward_stacks` always returns the list.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["StackedHourglass", "hourglass"]


class Residual(nn.Module):
    """Pre-activation bottleneck: BN-ReLU-1x1 (``mid``), BN-ReLU-3x3 (``mid``), BN-ReLU-1x1
    (``2 * mid``), plus the input (through ``downsample``, a 1x1 convolution, when
    ``in_channels != 2 * mid``).

    Shapes: (N, in_channels, H, W) -> (N, 2 * mid, H, W).
    """

    def __init__(self, in_channels: int, mid: int) -> None:
        super().__init__()
        out_channels = 2 * mid
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, mid, 1)
        self.bn2 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, padding=1)
        self.bn3 = nn.BatchNorm2d(mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1)
        self.relu = nn.ReLU(inplace=True)  # acts on BatchNorm outputs, never on the input
        self.downsample = (
            None if in_channels == out_channels
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1))
        )

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + (x if self.downsample is None else self.downsample(x))


def _residuals(channels: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` residuals of width ``channels`` (even) in a row."""
    return nn.Sequential(*(Residual(channels, channels // 2) for _ in range(num_blocks)))


class Hourglass(nn.Module):
    """One hourglass of ``depth`` levels: (N, C, H, W) -> (N, C, H, W) for any H, W >= 1.

    ``hg[i]`` is level ``i`` (0 the deepest), see the module docstring for its entries.
    """

    def __init__(self, depth: int, channels: int, num_blocks: int = 1) -> None:
        super().__init__()
        self.hg = nn.ModuleList(
            nn.ModuleList(_residuals(channels, num_blocks) for _ in range(4 if i == 0 else 3))
            for i in range(depth)
        )

    def _level(self, i: int, x: Tensor) -> Tensor:
        skip, down, up, *bottom = self.hg[i]
        upper = skip(x)
        # floor pooling as the official; a 1-pixel side stays 1 pixel instead of vanishing
        low = down(F.max_pool2d(x, 2, 2, ceil_mode=min(x.shape[-2:]) == 1))
        low = up(bottom[0](low) if i == 0 else self._level(i - 1, low))
        return upper + F.interpolate(low, size=upper.shape[-2:], mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        return self._level(len(self.hg) - 1, x)


class StackedHourglass(nn.Module):
    """Stacked hourglass with intermediate supervision; heatmaps at stride 4.

    Parameters
    ----------
    num_joints : int
        K, the number of heatmaps.
    num_stacks : int
        Number of hourglasses (official ``NUM_STACKS``: 4 or 8).
    channels : int
        Width of the hourglasses (official ``NUM_FEATURES``: 256), a multiple of 4; the stem
        widens C/4 -> C/2 -> C.
    num_blocks : int
        Residuals per hourglass branch and after each hourglass (official ``NUM_BLOCKS``: 1).
    depth : int
        Halvings per hourglass (official: 4, from stride 4 down to stride 64).

    Shapes: (N, 3, H, W) -> training: list of ``num_stacks`` tensors (N, K, H/4, W/4);
    eval: the last of them. H/4 and W/4 are rounded up.

    Convolutions keep PyTorch's default initialisation, as the official, except the heatmap
    heads ``score``: N(0, 0.001) weights and zero bias, as the other models' heads.
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
        if channels % 4:
            raise ValueError(f"channels must be a multiple of 4, got {channels}")
        self.num_joints = num_joints
        self.num_stacks = num_stacks
        quarter = channels // 4
        self.conv1 = nn.Conv2d(3, quarter, 7, stride=2, padding=3)
        self.bn1 = nn.BatchNorm2d(quarter)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(Residual(quarter, quarter))        # C/4 -> C/2
        self.layer2 = nn.Sequential(Residual(2 * quarter, 2 * quarter))  # C/2 -> C
        self.layer3 = nn.Sequential(Residual(channels, channels // 2))  # C -> C
        self.maxpool = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.hg = nn.ModuleList(Hourglass(depth, channels, num_blocks) for _ in range(num_stacks))
        self.res = nn.ModuleList(_residuals(channels, num_blocks) for _ in range(num_stacks))
        self.fc = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
            )
            for _ in range(num_stacks)
        )
        self.score = nn.ModuleList(nn.Conv2d(channels, num_joints, 1) for _ in range(num_stacks))
        self.fc_ = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(num_stacks - 1))
        self.score_ = nn.ModuleList(
            nn.Conv2d(num_joints, channels, 1) for _ in range(num_stacks - 1)
        )
        for head in self.score:
            nn.init.normal_(head.weight, std=0.001)
            nn.init.zeros_(head.bias)

    def forward_stacks(self, x: Tensor) -> list[Tensor]:
        """(N, 3, H, W) -> list of ``num_stacks`` heatmap tensors (N, K, H/4, W/4)."""
        x = self.layer1(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.maxpool(x)))
        outputs = []
        for s in range(self.num_stacks):
            features = self.fc[s](self.res[s](self.hg[s](x)))
            heatmaps = self.score[s](features)
            outputs.append(heatmaps)
            if s < self.num_stacks - 1:
                x = x + self.fc_[s](features) + self.score_[s](heatmaps)
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
