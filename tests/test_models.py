"""Architectures: official parameter counts and key layouts, forward shapes, options, errors.

Full-size models are only built on the ``meta`` device (shapes, no memory, no compute);
every forward runs a tiny model or a tiny input.
"""

from __future__ import annotations

import argparse
import json

import pytest
import torch
import torch.nn.functional as F
import yaml
from torch.nn.modules.module import (
    register_module_buffer_registration_hook,
    register_module_parameter_registration_hook,
)

from darkpose.models import (
    MODELS,
    HRNet,
    HRNetConfig,
    HRNetStage,
    apply_state_dict,
    build_model,
    count_parameters,
    list_models,
    model_from_official_config,
)
from darkpose.models.listing import parameter_counts
from darkpose.models.listing import run as run_listing
from darkpose.models.resnet import ResNet
from state_dicts import random_state_dict

OFFICIAL = {  # state_dict.json file -> (experiment YAML, registered name, num_joints)
    "coco_hrnet_w32_256x192_adam_lr1e-3": ("coco/hrnet/w32_256x192_adam_lr1e-3", "hrnet_w32", 17),
    "coco_hrnet_w48_384x288_adam_lr1e-3": ("coco/hrnet/w48_384x288_adam_lr1e-3", "hrnet_w48", 17),
    "coco_resnet_res50_256x192_d256x3_adam_lr1e-3": (
        "coco/resnet/res50_256x192_d256x3_adam_lr1e-3", "simple_baseline_r50", 17),
    "mpii_hrnet_w32_256x256_adam_lr1e-3": ("mpii/hrnet/w32_256x256_adam_lr1e-3", "hrnet_w32", 16),
}
HOURGLASS = {  # state_dict.json file -> registered name (17 joints; no YAML in the shared data)
    "coco_hourglass_hg4_128x96_d256x3_adam_lr2.5e-4": "hourglass_4",
    "coco_hourglass_hg8_256x192_d256x3_adam_lr2.5e-4": "hourglass_8",
}
LAYOUTS = {  # every official key file -> (registered name, num_joints)
    **{json_name: (name, k) for json_name, (_, name, k) in OFFICIAL.items()},
    **{json_name: (name, 17) for json_name, name in HOURGLASS.items()},
}


def meta_model(name: str, **options) -> torch.nn.Module:
    with torch.device("meta"):
        return build_model(name, **options)


# --- the six official parameter counts (issue acceptance) ----------------------------------


@pytest.mark.parametrize(
    ("name", "num_joints", "expected"),
    [
        ("hrnet_w32", 17, 28_536_113),
        ("hrnet_w48", 17, 63_595_745),
        ("simple_baseline_r50", 17, 33_999_697),
        ("hrnet_w32", 16, 28_536_080),
        ("hourglass_4", 17, 13_020_612),
        ("hourglass_8", 17, 25_598_472),
    ],
)
def test_official_parameter_counts(name, num_joints, expected):
    assert count_parameters(meta_model(name, num_joints=num_joints)) == expected


def test_simple_baseline_counts_match_the_published_ones():
    # HRNet paper, table 1: SimpleBaseline ResNet-101 53.0 M, ResNet-152 68.6 M parameters
    assert round(count_parameters(meta_model("simple_baseline_r101")) / 1e6, 1) == 53.0
    assert round(count_parameters(meta_model("simple_baseline_r152")) / 1e6, 1) == 68.6


@pytest.mark.parametrize(
    ("depth", "expected"),
    # torchvision's ImageNet ResNets minus their 1000-class fc layer (in * 1000 + 1000)
    [(18, 11_689_512 - 513_000), (34, 21_797_672 - 513_000), (50, 25_557_032 - 2_049_000),
     (101, 44_549_160 - 2_049_000), (152, 60_192_808 - 2_049_000)],
)
def test_resnet_backbone_counts(depth, expected):
    with torch.device("meta"):
        assert count_parameters(ResNet(depth)) == expected


@pytest.mark.parametrize("json_name", sorted(LAYOUTS))
def test_state_dict_layout_equals_official(official_formats, json_name):
    """Same keys, in the same order, with the same shapes, as the official model."""
    facts = json.loads((official_formats / f"{json_name}.state_dict.json").read_text())
    name, num_joints = LAYOUTS[json_name]
    model = meta_model(name, num_joints=num_joints)
    layout = {k: list(v.shape) for k, v in model.state_dict().items()}
    assert list(layout) == list(facts["state_dict"])
    assert layout == facts["state_dict"]
    assert count_parameters(model) == facts["num_parameters"]
    # buffers (BatchNorm statistics) are in the state_dict but not in the parameter count
    assert sum(v.numel() for v in model.state_dict().values()) > facts["num_parameters"]
    model.eval()
    out = model(torch.empty(facts["input_shape"], device="meta"))
    assert list(out.shape) == facts["output_shape"]


@pytest.mark.parametrize("json_name", sorted(OFFICIAL))
def test_official_yaml_builds_the_official_model(official_formats, json_name):
    yaml_name, name, num_joints = OFFICIAL[json_name]
    path = official_formats / "experiments" / f"{yaml_name}.yaml"
    cfg = yaml.safe_load(path.read_text())
    with torch.device("meta"):
        from_yaml = model_from_official_config(cfg, source=path)
        by_name = build_model(name, num_joints=num_joints)
    assert type(from_yaml) is type(by_name)
    shapes = {k: v.shape for k, v in from_yaml.state_dict().items()}
    assert shapes == {k: v.shape for k, v in by_name.state_dict().items()}


def test_official_yaml_128x96_is_w32(official_formats):
    cfg = yaml.safe_load(
        (official_formats / "experiments/coco/hrnet/w32_128x96_adam_lr1e-3.yaml").read_text()
    )
    with torch.device("meta"):
        model = model_from_official_config(cfg["MODEL"])  # the MODEL section alone works too
    assert count_parameters(model) == 28_536_113


def test_official_yaml_errors_name_file_and_field(official_formats, tmp_path):
    cfg = yaml.safe_load(
        (official_formats / "experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml").read_text()
    )
    cfg["MODEL"]["EXTRA"]["STAGE3"]["NUM_CHANNELS"] = [32, 64]
    with pytest.raises(ValueError, match=r"bad\.yaml: MODEL\.EXTRA\.STAGE3: NUM_BRANCHES is 3"):
        model_from_official_config(cfg, source="bad.yaml")
    with pytest.raises(ValueError, match="MODEL.NAME 'pose_mobilenet' is not supported"):
        model_from_official_config({"MODEL": {"NAME": "pose_mobilenet"}})
    with pytest.raises(ValueError, match="MODEL.NAME is missing"):
        model_from_official_config({"MODEL": {"NUM_JOINTS": 17}})
    with pytest.raises(ValueError, match="NUM_DECONV_LAYERS is 2"):
        model_from_official_config(
            {"MODEL": {"NAME": "pose_resnet", "EXTRA": {"NUM_DECONV_LAYERS": 2}}}
        )


# --- listing ---------------------------------------------------------------------------------


def test_list_models_and_cli_listing(capsys):
    names = list_models()
    for required in ("hrnet_w32", "hrnet_w48", "simple_baseline_r50", "hourglass_4",
                     "hourglass_8", *(f"simple_baseline_r{d}" for d in (18, 34, 101, 152))):
        assert required in names
    assert run_listing(argparse.Namespace(num_joints=17, json=False)) == 0
    text = capsys.readouterr().out
    assert "hrnet_w32" in text and "28,536,113" in text and "63,595,745" in text
    assert "33,999,697" in text and "13,020,612" in text and "25,598,472" in text
    assert run_listing(argparse.Namespace(num_joints=16, json=True)) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["hrnet_w32"] == 28_536_080 and set(counts) == set(MODELS)


def test_parameter_counts_allocate_no_real_tensors():
    """Every parameter and buffer the listing creates is on the meta device: 0 bytes of real
    memory (measured through the global registration hooks, which see each one)."""
    seen = []
    handles = [register(lambda module, name, tensor: seen.append(tensor))
               for register in (register_module_parameter_registration_hook,
                                register_module_buffer_registration_hook)]
    try:
        counts = parameter_counts(17)
    finally:
        for handle in handles:
            handle.remove()
    tensors = [t for t in seen if t is not None]
    real_bytes = sum(t.numel() * t.element_size() for t in tensors if t.device.type != "meta")
    assert real_bytes == 0
    # the hooks saw every parameter counted (327,449,228 over the 12 models), so 0 is measured
    assert sum(t.numel() for t in tensors if isinstance(t, torch.nn.Parameter)) == sum(
        counts.values()
    )
    assert counts["hrnet_w48"] == 63_595_745 and counts["hourglass_8"] == 25_598_472


# --- forward of every architecture on tiny inputs --------------------------------------------


def test_hrnet_tiny_forward_and_backward():
    torch.manual_seed(0)
    model = build_model("hrnet_tiny", num_joints=5)
    x = torch.randn(2, 3, 64, 48)
    out = model(x)
    assert out.shape == (2, 5, 16, 12)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 5, 16, 12)


def test_hrnet_works_at_sizes_the_original_cannot():
    """Fuse layers upsample to the target branch's size, so odd stride-32 maps work."""
    model = build_model("hrnet_tiny").eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 72, 40)).shape == (1, 17, 18, 10)
        assert model(torch.randn(1, 3, 20, 12)).shape == (1, 17, 5, 3)


def test_hrnet_fuse_equals_fixed_factor_upsampling():
    """At official sizes, size-matched upsampling is exactly the original's scale factor."""
    torch.manual_seed(0)
    model = build_model("hrnet_tiny").eval()
    module = model.stage3[0]  # 3 branches, at 16x12, 8x6, 4x3
    xs = [torch.randn(1, c, 16 // 2**b, 12 // 2**b) for b, c in enumerate((8, 16, 32))]
    with torch.no_grad():
        got = module(list(xs))
        ys = [branch(x) for branch, x in zip(module.branches, xs, strict=True)]
        for i in range(3):
            total = ys[i]
            for j in range(3):
                if j > i:
                    up = F.interpolate(module.fuse_layers[i][j](ys[j]), scale_factor=2 ** (j - i),
                                       mode="nearest")
                    total = total + up
                elif j < i:
                    total = total + module.fuse_layers[i][j](ys[j])
            torch.testing.assert_close(got[i], torch.relu(total), rtol=0, atol=0)


@pytest.mark.parametrize("depth", [18, 50])
def test_simple_baseline_forward(depth):
    torch.manual_seed(0)
    model = build_model(f"simple_baseline_r{depth}", num_joints=3, deconv_channels=(16, 16, 16))
    out = model(torch.randn(2, 3, 64, 32))
    assert out.shape == (2, 3, 16, 8)
    assert model.deconv_layers[0].weight.shape == (model.out_channels, 16, 4, 4)


def test_simple_baseline_deconv_kernels_and_head():
    model = build_model("simple_baseline_r18", num_joints=2, deconv_channels=(8, 8, 8),
                        deconv_kernels=(2, 3, 4), final_conv_kernel=3, deconv_with_bias=True)
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 2, 16, 16)
    assert model.final_layer.weight.shape == (2, 8, 3, 3)
    assert model.deconv_layers[3].bias is not None


@pytest.mark.parametrize("json_name", sorted(HOURGLASS))
def test_official_hourglass_state_dict_loads_strictly(official_formats, json_name):
    facts = json.loads((official_formats / f"{json_name}.state_dict.json").read_text())
    state = random_state_dict(facts["state_dict"])
    model = build_model(HOURGLASS[json_name])
    report = apply_state_dict(model, state, path=json_name)  # strict by default
    assert report.ok and report.missing == report.unexpected == report.mismatched == []
    assert len(report.loaded) == len(facts["state_dict"]) == len(model.state_dict())
    own = model.state_dict()
    for key, value in state.items():
        torch.testing.assert_close(own[key], value, rtol=0, atol=0)


def official_hourglass_forward(model, x):
    """The official DarkPose hourglass forward, step by step, on our model's modules: floor
    pooling, nearest upsampling by 2 and, at the deepest level, to the fixed size 4x3."""

    def level(levels, i, x):
        skip, down, up, *bottom = levels[i]
        low = down(F.max_pool2d(x, 2, stride=2))
        low = up(bottom[0](low) if i == 0 else level(levels, i - 1, low))
        upsampled = (F.interpolate(low, size=(4, 3)) if i == 0
                     else F.interpolate(low, scale_factor=2))
        return skip(x) + upsampled

    x = model.layer1(model.relu(model.bn1(model.conv1(x))))
    x = model.layer3(model.layer2(F.max_pool2d(x, 2, stride=2)))
    outputs = []
    for s in range(model.num_stacks):
        y = model.fc[s](model.res[s](level(model.hg[s].hg, len(model.hg[s].hg) - 1, x)))
        outputs.append(model.score[s](y))
        if s < model.num_stacks - 1:
            x = x + model.fc_[s](y) + model.score_[s](outputs[-1])
    return outputs


def test_hourglass_equals_the_official_forward_at_128x96():
    """At 128x96 the deepest map (4x3) halves to 2x1 (floor) and comes back to the official's
    fixed 4x3; size-matched upsampling does exactly that, and doubles everywhere else."""
    torch.manual_seed(0)
    model = build_model("hourglass_4", num_joints=3, channels=8).eval()
    x = torch.randn(1, 3, 128, 96)
    with torch.no_grad():
        ours = model.forward_stacks(x)
        official = official_hourglass_forward(model, x)
    assert [o.shape for o in ours] == [(1, 3, 32, 24)] * 4
    for a, b in zip(ours, official, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("name", "size"),
    [("hourglass_4", (128, 96)), ("hourglass_4", (256, 192)), ("hourglass_4", (384, 288)),
     ("hourglass_8", (256, 192))],
)
def test_hourglass_at_every_config_size(name, size):
    """One training forward per size: every stack gives (N, K, H/4, W/4), where the official
    forward fails at 256x192 and 384x288."""
    torch.manual_seed(0)
    h, w = size
    model = build_model(name, num_joints=3, channels=8)
    outputs = model(torch.randn(1, 3, h, w))  # training mode: one heatmap tensor per stack
    assert isinstance(outputs, list) and len(outputs) == model.num_stacks
    assert all(o.shape == (1, 3, h // 4, w // 4) for o in outputs)


def test_hourglass_eval_returns_the_last_stack():
    torch.manual_seed(0)
    model = build_model("hourglass_4", num_joints=3, channels=8).eval()
    x = torch.randn(1, 3, 64, 48)
    with torch.no_grad():
        last = model(x)
        stacks = model.forward_stacks(x)
    assert isinstance(last, torch.Tensor) and last.shape == (1, 3, 16, 12)
    torch.testing.assert_close(last, stacks[-1], rtol=0, atol=0)


def test_hourglass_odd_sizes_and_options():
    model = build_model("hourglass_4", num_joints=2, channels=8, num_blocks=2, depth=2).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 30, 22)).shape == (1, 2, 8, 6)
        # depth 4 from a 4x4 map: 2x2, 1x1, then the two deepest levels keep 1x1 (no 0x0 map)
        assert build_model("hourglass_4", channels=8).eval()(torch.randn(1, 3, 16, 16)).shape == (
            1, 17, 4, 4)
    assert len(model.hg[0].hg) == 2 and len(model.res[0]) == 2
    with pytest.raises(ValueError, match="num_blocks must be at least 1"):
        build_model("hourglass_4", num_blocks=0)
    with pytest.raises(ValueError, match="channels must be a multiple of 4, got 10"):
        build_model("hourglass_4", channels=10)


# --- initialisation ----------------------------------------------------------------------------


def test_heads_start_from_normal_0_001():
    torch.manual_seed(0)
    for name, head_of in (
        ("hrnet_tiny", lambda m: [m.final_layer]),
        ("hourglass_4", lambda m: list(m.score)),
    ):
        model = build_model(name, **({"channels": 32} if name == "hourglass_4" else {}))
        weights = torch.cat([h.weight.flatten() for h in head_of(model)])
        assert 0.0008 < weights.std().item() < 0.0012
        assert all(torch.count_nonzero(h.bias) == 0 for h in head_of(model))
    model = build_model("simple_baseline_r18", deconv_channels=(16, 16, 16))
    assert 0.0009 < model.deconv_layers[0].weight.std().item() < 0.0011
    assert 0.0008 < model.final_layer.weight.std().item() < 0.0012
    # HRNet: every convolution, as the official init_weights
    tiny = build_model("hrnet_tiny")
    assert 0.0009 < tiny.stage4[0].branches[3][0].conv2.weight.std().item() < 0.0011


# --- options and errors ------------------------------------------------------------------------


def test_build_model_errors_are_clear():
    with pytest.raises(ValueError, match=r"unknown model 'hrnet_w64'; available: hrnet_w32, "):
        build_model("hrnet_w64")
    with pytest.raises(ValueError, match=r"fixes depth .*options left to choose: deconv_"):
        build_model("simple_baseline_r50", depth=101)
    with pytest.raises(ValueError, match=r"fixes config"):
        build_model("hrnet_w32", config=HRNetConfig.tiny())
    with pytest.raises(ValueError, match=r"has no option colour; its options are: final_conv"):
        build_model("hrnet_w32", colour="red")
    with pytest.raises(ValueError, match="num_joints must be a positive integer"):
        build_model("hrnet_w32", num_joints=0)
    with pytest.raises(ValueError, match="ResNet depth must be one of"):
        ResNet(42)
    with pytest.raises(ValueError, match="final_conv_kernel must be 1 or 3"):
        build_model("simple_baseline_r18", final_conv_kernel=5)


def test_hrnet_config_from_dataclasses():
    config = HRNetConfig(
        stages=(HRNetStage(1, (1, 1), (4, 8)), HRNetStage(1, (1, 1, 1), (4, 8, 16))),
        stage1=HRNetStage(1, (1,), (4,), block="BOTTLENECK"),
        stem_channels=8,
        final_conv_kernel=3,
    )
    model = HRNet(num_joints=2, config=config)
    assert model.pretrained_layers == (
        "conv1", "bn1", "conv2", "bn2", "layer1", "transition1", "stage2", "transition2", "stage3"
    )
    assert model.final_layer.weight.shape == (2, 4, 3, 3)
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 2, 8, 8)
    assert build_model("hrnet_w32", final_conv_kernel=3).final_layer.weight.shape[-1] == 3
    with pytest.raises(ValueError, match="stages may only add branches"):
        HRNetConfig(stages=(HRNetStage(1, (1, 1), (4, 8)), HRNetStage(1, (1,), (4,))))
    with pytest.raises(ValueError, match="one entry per branch"):
        HRNetStage(1, (1, 1), (4,))
    with pytest.raises(ValueError, match="block must be one of"):
        HRNetStage(1, (1,), (4,), block="WIDE")
