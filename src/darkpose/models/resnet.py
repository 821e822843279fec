"""ResNet-18/34/50/101/152 (He et al., 2016), written here for pose estimation.

The residual blocks are shared with HRNet, whose stem and branches are made of the same
``BasicBlock`` and ``Bottleneck`` units. Attribute names follow the layout of the official
pose-estimation code and of the ImageNet checkpoints (``conv1``, ``bn1``, ``layer1`` ...
``layer4``, ``downsample.0`` / ``downsample.1``), so their state_dicts load without renaming.
The stride of a bottleneck sits on its 3x3 convolution, as in the official pose_resnet.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["RESNET_DEPTHS", "BasicBlock", "Bottleneck", "ResNet", "make_res_layer"]


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """3x3 convolution with padding 1 and no bias (a BatchNorm follows)."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection; ``expansion`` = 1.

    Shapes: (N, inplanes, H, W) -> (N, planes, H / stride, W / stride).
    """

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 convolutions with a residual connection; ``expansion`` = 4.

    Shapes: (N, inplanes, H, W) -> (N, 4 * planes, H / stride, W / stride).
    """

    expansion = 4

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def make_res_layer(
    block: type[BasicBlock] | type[Bottleneck],
    inplanes: int,
    planes: int,
    num_blocks: int,
    stride: int = 1,
) -> nn.Sequential:
    """``num_blocks`` residual blocks; the first one changes stride and width.

    The first block gets a ``downsample`` branch (1x1 convolution + BatchNorm, keys
    ``0.downsample.0`` / ``0.downsample.1``) when its stride is not 1 or its input width
    differs from ``planes * block.expansion``.
    """
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, out_channels, 1, stride=stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )
    layers = [block(inplanes, planes, stride, downsample)]
    layers += [block(out_channels, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*layers)


# depth -> (block, blocks per stage)
RESNET_DEPTHS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class ResNet(nn.Module):
    """ResNet backbone without the classifier: stride 32 features.

    Parameters
    ----------
    depth : int
        18, 34, 50, 101 or 152.

    Shapes: (N, 3, H, W) -> (N, ``out_channels``, H / 32, W / 32); ``out_channels`` is 512
    for depths 18/34 and 2048 for 50/101/152.

    Convolutions start from Kaiming-normal (fan-out) weights, BatchNorm from (1, 0); in practice
    they are replaced by ImageNet weights (``load_checkpoint(model, path,
    prefixes=model.pretrained_layers)``; the file's ``fc.*`` keys are ignored).
    """

    pretrained_layers: tuple[str, ...] = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")

    def __init__(self, depth: int = 50) -> None:
        super().__init__()
        if depth not in RESNET_DEPTHS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_DEPTHS)}, got {depth!r}")
        block, counts = RESNET_DEPTHS[depth]
        self.depth = depth
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        widths = (64, 128, 256, 512)
        inplanes = 64
        for i, (planes, n) in enumerate(zip(widths, counts, strict=True)):
            layer = make_res_layer(block, inplanes, planes, n, stride=1 if i == 0 else 2)
            self.add_module(f"layer{i + 1}", layer)
            inplanes = planes * block.expansion
        self.out_channels = inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) -> (N, out_channels, H / 32, W / 32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        x = self.layer2(x)
        x = self.layer3(x)
        return self.layer4(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)
