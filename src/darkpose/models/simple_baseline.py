"""SimpleBaseline (Xiao et al., ECCV 2018): a ResNet, three deconvolutions, a 1x1 head.

The state_dict layout is that of the official ``pose_resnet``: the ResNet keys at the top level
(``conv1``, ``bn1``, ``layer1`` ... ``layer4``), then ``deconv_layers.{3i}`` (transposed
convolution), ``deconv_layers.{3i+1}`` (BatchNorm) and ``final_layer``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import Tensor, nn

from darkpose.models.resnet import ResNet

__all__ = ["SimpleBaseline", "simple_baseline", "simple_baseline_options_from_official"]

# kernel size -> (padding, output_padding) that make a stride-2 deconvolution exactly double
_DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


class SimpleBaseline(ResNet):
    """ResNet backbone + deconvolution head, heatmaps at stride 4.

    Parameters
    ----------
    num_joints : int
        K, the number of heatmaps.
    depth : int
        ResNet depth: 18, 34, 50, 101 or 152.
    deconv_channels : sequence of int
        Output channels of each stride-2 deconvolution (official: 256, 256, 256). Three layers
        bring stride 32 to stride 4.
    deconv_kernels : sequence of int
        Kernel size of each deconvolution: 2, 3 or 4 (official: 4).
    deconv_with_bias : bool
        Bias on the deconvolutions (official: False; BatchNorm follows).
    final_conv_kernel : int
        1 or 3: kernel of the head convolution.

    Shapes: (N, 3, H, W) -> (N, K, H / 4, W / 4) for H, W multiples of 32.

    Deconvolutions and the head start from N(0, 0.001) weights and zero bias, as in the
    official ``init_weights``; the ResNet part as in :class:`ResNet`.
    """

    def __init__(
        self,
        num_joints: int = 17,
        depth: int = 50,
        deconv_channels: Sequence[int] = (256, 256, 256),
        deconv_kernels: Sequence[int] = (4, 4, 4),
        deconv_with_bias: bool = False,
        final_conv_kernel: int = 1,
    ) -> None:
        super().__init__(depth)
        if len(deconv_channels) != len(deconv_kernels):
            raise ValueError(
                f"deconv_channels has {len(deconv_channels)} entries but deconv_kernels "
                f"has {len(deconv_kernels)}: one kernel size per deconvolution is expected"
            )
        if final_conv_kernel not in (1, 3):
            raise ValueError(f"final_conv_kernel must be 1 or 3, got {final_conv_kernel!r}")
        layers: list[nn.Module] = []
        in_channels = self.out_channels
        for channels, kernel in zip(deconv_channels, deconv_kernels, strict=True):
            if kernel not in _DECONV_PADDING:
                raise ValueError(f"deconvolution kernel must be 2, 3 or 4, got {kernel!r}")
            padding, output_padding = _DECONV_PADDING[kernel]
            layers += [
                nn.ConvTranspose2d(
                    in_channels,
                    channels,
                    kernel,
                    stride=2,
                    padding=padding,
                    output_padding=output_padding,
                    bias=deconv_with_bias,
                ),
                nn.BatchNorm2d(channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = channels
        self.deconv_layers = nn.Sequential(*layers)
        self.final_layer = nn.Conv2d(
            in_channels, num_joints, final_conv_kernel, padding=final_conv_kernel // 2
        )
        self.num_joints = num_joints
        for m in self.deconv_layers.modules():
            if isinstance(m, nn.ConvTranspose2d):
                nn.init.normal_(m.weight, std=0.001)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.final_layer.weight, std=0.001)
        nn.init.zeros_(self.final_layer.bias)

    def forward(self, x: Tensor) -> Tensor:
        """(N, 3, H, W) images -> (N, K, H / 4, W / 4) heatmaps."""
        return self.final_layer(self.deconv_layers(self.forward_features(x)))


def simple_baseline(
    num_joints: int = 17,
    *,
    depth: int = 50,
    deconv_channels: Sequence[int] = (256, 256, 256),
    deconv_kernels: Sequence[int] = (4, 4, 4),
    deconv_with_bias: bool = False,
    final_conv_kernel: int = 1,
) -> SimpleBaseline:
    """Build a :class:`SimpleBaseline` (the parameters are the class's)."""
    return SimpleBaseline(
        num_joints=num_joints,
        depth=depth,
        deconv_channels=deconv_channels,
        deconv_kernels=deconv_kernels,
        deconv_with_bias=deconv_with_bias,
        final_conv_kernel=final_conv_kernel,
    )


def simple_baseline_options_from_official(extra: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options of :class:`SimpleBaseline` from an official ``MODEL.EXTRA`` section.

    Reads ``NUM_LAYERS``, ``NUM_DECONV_FILTERS``, ``NUM_DECONV_KERNELS``,
    ``DECONV_WITH_BIAS`` and ``FINAL_CONV_KERNEL``; absent fields take the official defaults.
    """
    channels = tuple(int(c) for c in extra.get("NUM_DECONV_FILTERS", (256,) * 3))
    kernels = tuple(int(k) for k in extra.get("NUM_DECONV_KERNELS", (4,) * 3))
    num_layers = int(extra.get("NUM_DECONV_LAYERS", len(channels)))
    if not num_layers == len(channels) == len(kernels):
        raise ValueError(
            f"MODEL.EXTRA.NUM_DECONV_LAYERS is {num_layers} but NUM_DECONV_FILTERS has "
            f"{len(channels)} values and NUM_DECONV_KERNELS {len(kernels)}: expected one "
            "filter count and one kernel size per layer"
        )
    return {
        "depth": int(extra.get("NUM_LAYERS", 50)),
        "deconv_channels": channels,
        "deconv_kernels": kernels,
        "deconv_with_bias": bool(extra.get("DECONV_WITH_BIAS", False)),
        "final_conv_kernel": int(extra.get("FINAL_CONV_KERNEL", 1)),
    }
