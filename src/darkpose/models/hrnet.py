"""HRNet for pose estimation (Sun et al., CVPR 2019), with the official stage layout.

The network keeps a stride-4 branch through the whole depth and adds one lower-resolution
branch per stage; at the end of every module the branches exchange information ("fuse").

    stem: conv1, bn1, conv2, bn2 (two stride-2 3x3 convolutions)   -> stride 4
    layer1: bottleneck blocks on one branch (the official "stage 1")
    transition1, stage2, transition2, stage3, transition3, stage4  -> 2, 3, 4 branches
    final_layer: 1x1 convolution of the stride-4 branch to K heatmaps

Attribute names, and therefore state_dict keys, are those of the official ``pose_hrnet``, so
the released checkpoints load unchanged. One deliberate difference: the fuse layers upsample
to the size of the target branch instead of by a fixed factor. The two are identical whenever
the input height and width are multiples of 32 (every official configuration); other sizes
work here where the original fails with a shape error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from darkpose.models.resnet import BasicBlock, Bottleneck, conv3x3, make_res_layer

__all__ = ["HRNet", "HRNetConfig", "HRNetStage", "hrnet", "hrnet_config_from_official"]

BLOCKS: dict[str, type[BasicBlock] | type[Bottleneck]] = {
    "BASIC": BasicBlock,
    "BOTTLENECK": Bottleneck,
}


@dataclass(frozen=True)
class HRNetStage:
    """One stage: ``num_modules`` HRNet modules over ``len(num_channels)`` branches.

    Parameters
    ----------
    num_modules : int
        Modules in the stage (each: residual blocks per branch, then a fuse).
    num_blocks : tuple of int
        Residual blocks per branch in every module.
    num_channels : tuple of int
        Width of each branch, highest resolution first (before ``block`` expansion).
    block : str
        ``"BASIC"`` or ``"BOTTLENECK"``.
    fuse_method : str
        ``"SUM"``, the only method of the official code.
    """

    num_modules: int
    num_blocks: tuple[int, ...]
    num_channels: tuple[int, ...]
    block: str = "BASIC"
    fuse_method: str = "SUM"

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_blocks", tuple(int(b) for b in self.num_blocks))
        object.__setattr__(self, "num_channels", tuple(int(c) for c in self.num_channels))
        if self.block not in BLOCKS:
            raise ValueError(f"block must be one of {sorted(BLOCKS)}, got {self.block!r}")
        if self.fuse_method != "SUM":
            raise ValueError(f"fuse_method must be 'SUM', got {self.fuse_method!r}")
        if self.num_modules < 1:
            raise ValueError(f"num_modules must be at least 1, got {self.num_modules}")
        if not self.num_channels or len(self.num_blocks) != len(self.num_channels):
            raise ValueError(
                f"num_blocks {self.num_blocks} and num_channels {self.num_channels} must have "
                "one entry per branch (and at least one branch)"
            )
        if min(self.num_blocks) < 1 or min(self.num_channels) < 1:
            raise ValueError(
                f"num_blocks {self.num_blocks} and num_channels {self.num_channels} must be "
                "positive"
            )

    @property
    def num_branches(self) -> int:
        return len(self.num_channels)

    @property
    def expansion(self) -> int:
        return BLOCKS[self.block].expansion


def _official_stages(width: int) -> tuple[HRNetStage, ...]:
    w = (width, 2 * width, 4 * width, 8 * width)
    return (
        HRNetStage(1, (4, 4), w[:2]),
        HRNetStage(4, (4, 4, 4), w[:3]),
        HRNetStage(3, (4, 4, 4, 4), w),
    )


@dataclass(frozen=True)
class HRNetConfig:
    """Widths and depths of an HRNet.

    Parameters
    ----------
    stages : tuple of HRNetStage
        The multi-branch stages, in order (official: stage 2, 3 and 4 with 2, 3, 4 branches).
        Each stage has at least as many branches as the one before.
    stage1 : HRNetStage
        The single-branch stage ``layer1`` (official: 4 bottlenecks of width 64).
    stem_channels : int
        Width of the two stem convolutions (official: 64).
    final_conv_kernel : int
        1 or 3: kernel of the head convolution.
    """

    stages: tuple[HRNetStage, ...] = field(default_factory=lambda: _official_stages(32))
    stage1: HRNetStage = HRNetStage(1, (4,), (64,), block="BOTTLENECK")
    stem_channels: int = 64
    final_conv_kernel: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "stages", tuple(self.stages))
        if self.stage1.num_branches != 1 or self.stage1.num_modules != 1:
            raise ValueError(
                f"stage1 must have one module and one branch, got {self.stage1.num_modules} "
                f"modules and {self.stage1.num_branches} branches"
            )
        if not self.stages:
            raise ValueError("an HRNet needs at least one multi-branch stage after stage1")
        branches = 1
        for i, stage in enumerate(self.stages, start=2):
            if stage.num_branches < branches:
                raise ValueError(
                    f"stage{i} has {stage.num_branches} branches, fewer than the {branches} "
                    "of the stage before; stages may only add branches"
                )
            branches = stage.num_branches
        if self.final_conv_kernel not in (1, 3):
            raise ValueError(f"final_conv_kernel must be 1 or 3, got {self.final_conv_kernel!r}")

    @classmethod
    def official(cls, width: int = 32, final_conv_kernel: int = 1) -> HRNetConfig:
        """The published layout: HRNet-W32 (``width=32``) or HRNet-W48 (``width=48``)."""
        return cls(stages=_official_stages(width), final_conv_kernel=final_conv_kernel)

    @classmethod
    def tiny(cls) -> HRNetConfig:
        """A four-stage HRNet of about 0.2 M parameters, for tests and smoke runs."""
        return cls(
            stages=(
                HRNetStage(1, (1, 1), (8, 16)),
                HRNetStage(2, (1, 1, 1), (8, 16, 32)),
                HRNetStage(1, (1, 1, 1, 1), (8, 16, 32, 64)),
            ),
            stage1=HRNetStage(1, (1,), (8,), block="BOTTLENECK"),
            stem_channels=16,
        )


class HRModule(nn.Module):
    """Residual blocks on each branch, then every branch receives the sum of all of them.

    Input and output: a list of tensors, branch b of shape (N, C_b, H_b, W_b), with
    H_{b+1} = ceil(H_b / 2). With ``multi_scale_output=False`` only branch 0 is returned.
    """

    def __init__(
        self,
        stage: HRNetStage,
        in_channels: Sequence[int],
        multi_scale_output: bool = True,
    ) -> None:
        super().__init__()
        block = BLOCKS[stage.block]
        n = stage.num_branches
        self.branches = nn.ModuleList(
            make_res_layer(block, in_channels[b], stage.num_channels[b], stage.num_blocks[b])
            for b in range(n)
        )
        channels = [c * block.expansion for c in stage.num_channels]
        self.out_channels = channels
        self.fuse_layers = None
        if n > 1:
            self.fuse_layers = nn.ModuleList(
                nn.ModuleList(self._fuse(channels, j, i) for j in range(n))
                for i in range(n if multi_scale_output else 1)
            )
        self.relu = nn.ReLU(inplace=True)

    @staticmethod
    def _fuse(channels: Sequence[int], j: int, i: int) -> nn.Module | None:
        """The path from branch j into branch i: 1x1 conv (j > i, then upsampling in forward),
        identity (None, j == i), or i - j stride-2 3x3 convs (j < i)."""
        if j == i:
            return None
        if j > i:
            return nn.Sequential(
                nn.Conv2d(channels[j], channels[i], 1, bias=False), nn.BatchNorm2d(channels[i])
            )
        steps: list[nn.Module] = []
        for k in range(i - j):
            last = k == i - j - 1
            out = channels[i] if last else channels[j]
            layers: list[nn.Module] = [conv3x3(channels[j], out, stride=2), nn.BatchNorm2d(out)]
            if not last:
                layers.append(nn.ReLU(inplace=True))
            steps.append(nn.Sequential(*layers))
        return nn.Sequential(*steps)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        xs = [branch(x) for branch, x in zip(self.branches, xs, strict=True)]
        if self.fuse_layers is None:
            return xs
        fused = []
        for i, paths in enumerate(self.fuse_layers):
            y = xs[i]
            for j, path in enumerate(paths):
                if j == i:
                    continue
                z = path(xs[j])
                if j > i:
                    z = F.interpolate(z, size=xs[i].shape[-2:], mode="nearest")
                y = y + z
            fused.append(self.relu(y))
        return fused


class HRNet(nn.Module):
    """HRNet pose network: images to K heatmaps at stride 4.

    Parameters
    ----------
    num_joints : int
        K, the number of heatmaps.
    config : HRNetConfig
        Widths and depths; default HRNet-W32.

    Shapes: (N, 3, H, W) -> (N, K, ceil(H / 4), ceil(W / 4)).

    Every convolution starts from N(0, 0.001) weights and zero bias, BatchNorm from (1, 0), as
    the official ``init_weights``. ``pretrained_layers`` names the top-level modules that an
    ImageNet HRNet file provides (the official ``PRETRAINED_LAYERS``).
    """

    def __init__(self, num_joints: int = 17, config: HRNetConfig | None = None) -> None:
        super().__init__()
        config = HRNetConfig() if config is None else config
        self.config = config
        self.num_joints = num_joints
        stem = config.stem_channels
        self.conv1 = conv3x3(3, stem, stride=2)
        self.bn1 = nn.BatchNorm2d(stem)
        self.conv2 = conv3x3(stem, stem, stride=2)
        self.bn2 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        s1 = config.stage1
        self.layer1 = make_res_layer(BLOCKS[s1.block], stem, s1.num_channels[0], s1.num_blocks[0])

        channels = [s1.num_channels[0] * s1.expansion]
        for s, stage in enumerate(config.stages, start=2):
            wanted = [c * stage.expansion for c in stage.num_channels]
            self.add_module(f"transition{s - 1}", self._transition(channels, wanted))
            modules = []
            for m in range(stage.num_modules):
                last = s == len(config.stages) + 1 and m == stage.num_modules - 1
                modules.append(HRModule(stage, wanted, multi_scale_output=not last))
            self.add_module(f"stage{s}", nn.Sequential(*modules))
            channels = wanted
        self._num_stages = len(config.stages) + 1
        k = config.final_conv_kernel
        self.final_layer = nn.Conv2d(channels[0], num_joints, k, padding=k // 2)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _transition(pre: Sequence[int], cur: Sequence[int]) -> nn.ModuleList:
        """Adapt the previous stage's branches to this one: a 3x3 conv where an existing
        branch changes width (None where it does not), stride-2 3x3 convs from the lowest
        resolution branch for each new branch."""
        layers: list[nn.Module | None] = []
        for i, c in enumerate(cur):
            if i < len(pre):
                if pre[i] == c:
                    layers.append(None)
                else:
                    layers.append(
                        nn.Sequential(conv3x3(pre[i], c), nn.BatchNorm2d(c), nn.ReLU(inplace=True))
                    )
                continue
            steps = []
            for k in range(i + 1 - len(pre)):
                out = c if k == i - len(pre) else pre[-1]
                steps.append(
                    nn.Sequential(
                        conv3x3(pre[-1], out, stride=2), nn.BatchNorm2d(out), nn.ReLU(inplace=True)
                    )
                )
            layers.append(nn.Sequential(*steps))
        return nn.ModuleList(layers)

    @property
    def pretrained_layers(self) -> tuple[str, ...]:
        names = ["conv1", "bn1", "conv2", "bn2", "layer1"]
        for s in range(2, self._num_stages + 1):
            names += [f"transition{s - 1}", f"stage{s}"]
        return tuple(names)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) images -> (N, K, H / 4, W / 4) heatmaps."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for s in range(2, self._num_stages + 1):
            transition = getattr(self, f"transition{s - 1}")
            xs = [
                xs[min(i, len(xs) - 1)] if t is None else t(xs[min(i, len(xs) - 1)])
                for i, t in enumerate(transition)
            ]
            xs = getattr(self, f"stage{s}")(xs)
        return self.final_layer(xs[0])


def hrnet(
    num_joints: int = 17,
    *,
    config: HRNetConfig | None = None,
    final_conv_kernel: int | None = None,
) -> HRNet:
    """Build an :class:`HRNet` (default: W32), optionally with another head kernel.

    Parameters
    ----------
    num_joints : int
        K, the number of heatmaps.
    config : HRNetConfig, optional
        The layout: ``HRNetConfig.official(32)`` (default), ``HRNetConfig.official(48)``,
        ``HRNetConfig.tiny()`` or any other.
    final_conv_kernel : int, optional
        Overrides the config's head kernel (1 or 3).
    """
    config = HRNetConfig.official(32) if config is None else config
    if final_conv_kernel is not None:
        config = replace(config, final_conv_kernel=final_conv_kernel)
    return HRNet(num_joints=num_joints, config=config)


def _stage_from_official(extra: Mapping[str, Any], name: str) -> HRNetStage:
    where = f"MODEL.EXTRA.{name}"
    section = extra[name]
    if not isinstance(section, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(section).__name__}")
    for key in ("NUM_MODULES", "NUM_BLOCKS", "NUM_CHANNELS", "BLOCK"):
        if key not in section:
            raise ValueError(f"{where}.{key} is missing")
    blocks, channels = list(section["NUM_BLOCKS"]), list(section["NUM_CHANNELS"])
    branches = int(section.get("NUM_BRANCHES", len(channels)))
    if not branches == len(blocks) == len(channels):
        raise ValueError(
            f"{where}: NUM_BRANCHES is {branches} but NUM_BLOCKS has {len(blocks)} values and "
            f"NUM_CHANNELS {len(channels)}: expected one value per branch"
        )
    try:
        return HRNetStage(
            num_modules=int(section["NUM_MODULES"]),
            num_blocks=tuple(blocks),
            num_channels=tuple(channels),
            block=str(section["BLOCK"]),
            fuse_method=str(section.get("FUSE_METHOD", "SUM")),
        )
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def hrnet_config_from_official(extra: Mapping[str, Any]) -> HRNetConfig:
    """:class:`HRNetConfig` from the ``MODEL.EXTRA`` section of an official YAML file.

    Reads ``STAGE2``, ``STAGE3``, ``STAGE4`` (and further ``STAGEn`` while present; ``STAGE1``
    when given, else the official 4 bottlenecks of width 64) and ``FINAL_CONV_KERNEL``.
    """
    if "STAGE2" not in extra:
        raise ValueError("MODEL.EXTRA.STAGE2 is missing: an HRNet needs STAGE2, STAGE3, STAGE4")
    stages = []
    s = 2
    while f"STAGE{s}" in extra:
        stages.append(_stage_from_official(extra, f"STAGE{s}"))
        s += 1
    options: dict[str, Any] = {"stages": tuple(stages)}
    if "STAGE1" in extra:
        options["stage1"] = _stage_from_official(extra, "STAGE1")
    options["final_conv_kernel"] = int(extra.get("FINAL_CONV_KERNEL", 1))
    try:
        return HRNetConfig(**options)
    except ValueError as e:
        raise ValueError(f"MODEL.EXTRA: {e}") from None
