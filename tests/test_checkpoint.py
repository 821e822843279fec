"""Checkpoint loading: official key files strictly, every container format, refusals, saving."""

from __future__ import annotations

import builtins
import json
import re
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from darkpose.models import (
    CheckpointError,
    CheckpointMismatchError,
    UnsafeCheckpointError,
    apply_state_dict,
    build_model,
    load_checkpoint,
    load_pretrained_backbone,
    read_checkpoint,
    save_checkpoint,
)
from darkpose.models.resnet import ResNet
from state_dicts import random_state_dict

OFFICIAL = {  # state_dict.json file -> (registered name, num_joints)
    "coco_hrnet_w32_256x192_adam_lr1e-3": ("hrnet_w32", 17),
    "coco_hrnet_w48_384x288_adam_lr1e-3": ("hrnet_w48", 17),
    "coco_resnet_res50_256x192_d256x3_adam_lr1e-3": ("simple_baseline_r50", 17),
    "mpii_hrnet_w32_256x256_adam_lr1e-3": ("hrnet_w32", 16),
}


def tiny_state(num_joints: int = 17, seed: int = 1) -> dict[str, torch.Tensor]:
    model = build_model("hrnet_tiny", num_joints)
    layout = {k: list(v.shape) for k, v in model.state_dict().items()}
    return random_state_dict(layout, seed)


def assert_loaded(model: nn.Module, state: dict[str, torch.Tensor], prefix: str = "") -> None:
    own = model.state_dict()
    for key, value in state.items():
        torch.testing.assert_close(own[key[len(prefix):]], value, rtol=0, atol=0)


# --- the official key files, strictly (issue acceptance) ------------------------------------


@pytest.mark.parametrize("json_name", sorted(OFFICIAL))
def test_official_state_dict_loads_strictly(official_formats, tmp_path, json_name):
    facts = json.loads((official_formats / f"{json_name}.state_dict.json").read_text())
    name, num_joints = OFFICIAL[json_name]
    state = random_state_dict(facts["state_dict"])
    path = tmp_path / "final_state.pth"  # a plain state_dict, as the released files
    torch.save(state, path)
    del state
    model = build_model(name, num_joints=num_joints)
    report = load_checkpoint(model, path)  # strict by default
    assert report.ok and report.source == "state_dict"
    assert len(report.loaded) == len(facts["state_dict"]) == len(model.state_dict())
    assert report.ignored == report.untouched == []
    assert_loaded(model, torch.load(path, weights_only=True))
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, num_joints, 16, 16) and torch.isfinite(out).all()
    # the official input size gives the official output size (shape-only run on 'meta')
    assert list(model.to("meta")(torch.empty(facts["input_shape"], device="meta")).shape) == (
        facts["output_shape"]
    )


# --- containers ------------------------------------------------------------------------------


def test_training_checkpoint_with_module_prefix_and_numpy_perf(tmp_path):
    state = tiny_state()
    model = build_model("hrnet_tiny")
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(2, 3, 64, 48)).sum().backward()
    optimizer.step()
    path = tmp_path / "checkpoint.pth"
    torch.save(
        {
            "epoch": 141,
            "model": "pose_hrnet",
            "state_dict": {f"module.{k}": v for k, v in state.items()},  # DataParallel
            "best_state_dict": state,
            "perf": np.float64(0.7446),  # what the official trainer stores
            "optimizer": optimizer.state_dict(),
        },
        path,
    )
    report = load_checkpoint(model, path)
    assert report.source == "checkpoint['state_dict'], module. removed"
    assert report.meta == {"epoch": 141, "model": "pose_hrnet", "perf": 0.7446}
    assert_loaded(model, state)
    other = build_model("hrnet_tiny")
    assert load_checkpoint(other, path, key="best_state_dict").source == (
        "checkpoint['best_state_dict']"
    )
    assert_loaded(other, state)


def test_mmpose_keys(tmp_path):
    torch.manual_seed(0)
    source = build_model("simple_baseline_r18", num_joints=3, deconv_channels=(8, 8, 8))
    state = {}
    for key, value in source.state_dict().items():
        head = key.startswith(("deconv_layers", "final_layer"))
        state[("keypoint_head." if head else "backbone.") + key] = value
    path = tmp_path / "mmpose.pth"
    torch.save({"meta": {"mmpose_version": "0.29.0", "epoch": 210}, "state_dict": state}, path)
    model = build_model("simple_baseline_r18", num_joints=3, deconv_channels=(8, 8, 8))
    report = load_checkpoint(model, path)
    assert report.source == "checkpoint['state_dict'], mmpose keys" and report.ok
    assert_loaded(model, source.state_dict())


def test_safetensors_plain_file(tmp_path):
    state = tiny_state()
    path = tmp_path / "converted.safetensors"
    save_file(state, path)
    model = build_model("hrnet_tiny")
    report = load_checkpoint(model, path)
    assert report.source == "safetensors" and len(report.loaded) == len(state)
    assert_loaded(model, state)


def test_imagenet_resnet_backbone(tmp_path):
    torch.manual_seed(0)
    imagenet = ResNet(18).state_dict()
    imagenet = {k: v for k, v in imagenet.items() if not k.endswith("num_batches_tracked")}
    imagenet["fc.weight"], imagenet["fc.bias"] = torch.randn(1000, 512), torch.randn(1000)
    path = tmp_path / "resnet18-imagenet.pth"  # old files have no num_batches_tracked
    torch.save(imagenet, path)
    model = build_model("simple_baseline_r18", pretrained=path, deconv_channels=(8, 8, 8))
    assert_loaded(model, {k: v for k, v in imagenet.items() if not k.startswith("fc.")})
    report = load_pretrained_backbone(model, path)
    assert report.ignored == ["fc.weight", "fc.bias"]
    assert report.missing == [] and report.unexpected == []
    assert all(k.startswith(("deconv_layers", "final_layer")) for k in report.untouched)
    assert len(report.untouched) == len(model.deconv_layers.state_dict()) + 2

    wrong = tmp_path / "resnet50-imagenet.pth"
    torch.save(ResNet(50).state_dict(), wrong)
    with pytest.raises(CheckpointMismatchError, match=r"is not a backbone for SimpleBaseline"):
        load_pretrained_backbone(model, wrong)
    with pytest.raises(ValueError, match="StackedHourglass has no pretrained backbone"):
        build_model("hourglass_4", channels=8, pretrained=path)


def test_imagenet_hrnet_backbone_skips_classifier_and_extra_fuse(tmp_path):
    state = tiny_state()
    imagenet = {k: v for k, v in state.items() if not k.startswith("final_layer")}
    imagenet.update(
        {
            "final_layer.0.weight": torch.randn(2048, 64, 1, 1),  # ImageNet HRNet's own head
            "incre_modules.0.0.conv1.weight": torch.randn(4, 8, 1, 1),
            "classifier.weight": torch.randn(1000, 2048),
            # the ImageNet network fuses all branches in its last module; the pose one only 0
            "stage4.0.fuse_layers.1.0.0.0.weight": torch.randn(16, 8, 3, 3),
        }
    )
    path = tmp_path / "hrnet_imagenet.pth"
    torch.save(imagenet, path)
    model = build_model("hrnet_tiny")
    head = model.final_layer.weight.clone()
    report = load_pretrained_backbone(model, path)
    assert sorted(report.ignored) == ["classifier.weight", "final_layer.0.weight",
                                      "incre_modules.0.0.conv1.weight"]
    assert report.unexpected == ["stage4.0.fuse_layers.1.0.0.0.weight"]
    assert report.untouched == ["final_layer.weight", "final_layer.bias"]
    torch.testing.assert_close(model.final_layer.weight, head, rtol=0, atol=0)
    assert_loaded(model, {k: v for k, v in state.items() if not k.startswith("final_layer")})
    assert "ignored by the prefix filter" in report.summary()


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated")
def test_wrappers_are_looked_through(tmp_path):
    state = tiny_state()
    wrapped = nn.DataParallel(build_model("hrnet_tiny"))
    apply_state_dict(wrapped, state)
    assert_loaded(wrapped.module, state)
    compiled = torch.compile(build_model("hrnet_tiny"))  # lazy: nothing compiles here
    apply_state_dict(compiled, {f"module.{k}": v for k, v in state.items()})
    path = save_checkpoint(compiled, tmp_path / "model.pth")
    assert all(not k.startswith(("_orig_mod", "module")) for k in read_checkpoint(path).state_dict)


# --- strictness and reports -----------------------------------------------------------------


def test_strict_mismatch_lists_keys_and_changes_nothing(tmp_path):
    state = tiny_state(num_joints=16)  # final_layer for 16 joints
    del state["bn1.weight"]
    for i in range(7):
        state[f"extra.{i}"] = torch.zeros(1)
    path = tmp_path / "other.pth"
    torch.save(state, path)
    model = build_model("hrnet_tiny")  # 17 joints
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointMismatchError) as info:
        load_checkpoint(model, path)
    message = str(info.value)
    assert str(path) in message and "HRNet" in message
    assert "missing from the file (1): bn1.weight" in message
    assert "unexpected (not in the model) (7): extra.0, extra.1, extra.2, extra.3, extra.4, " \
           "... and 2 more" in message
    assert re.search(r"wrong shape \(2\): final_layer\.weight \(file \[16, 8, 1, 1\], model "
                     r"\[17, 8, 1, 1\]\), final_layer\.bias \(file \[16\], model \[17\]\)",
                     message)
    assert info.value.report.mismatched[1] == ("final_layer.bias", (16,), (17,))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)

    report = load_checkpoint(model, path, strict=False)  # e.g. fine-tuning COCO -> MPII
    assert not report.ok and report.missing == ["bn1.weight"]
    assert len(report.loaded) == len(before) - 3
    torch.testing.assert_close(model.final_layer.weight, before["final_layer.weight"])
    assert_loaded(model, {k: v for k, v in state.items()
                          if not k.startswith(("final_layer", "extra"))})


def test_nothing_matching_is_an_error_even_when_not_strict(tmp_path):
    path = tmp_path / "unrelated.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointMismatchError, match="not one tensor matches HRNet"):
        load_checkpoint(build_model("hrnet_tiny"), path, strict=False)


def test_empty_state_dict_is_a_mismatch():
    # 320 tensors, 53 of them num_batches_tracked counters (tolerated when missing)
    with pytest.raises(CheckpointMismatchError, match=r"0 in the file\):\n  missing from the "
                       r"file \(267\): conv1\.weight, bn1\.weight"):
        apply_state_dict(build_model("hrnet_tiny"), {})


def test_missing_num_batches_tracked_is_tolerated():
    state = {k: v for k, v in tiny_state().items() if not k.endswith("num_batches_tracked")}
    report = apply_state_dict(build_model("hrnet_tiny"), state)
    assert report.ok


# --- refusals and bad files -------------------------------------------------------------------


class _RunsCode:
    """Unpickling this would call exec: the classic malicious-checkpoint payload."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (builtins.exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_unsafe_pickle_is_refused(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": tiny_state(), "payload": _RunsCode(str(marker))}, path)
    with pytest.raises(UnsafeCheckpointError) as info:
        load_checkpoint(build_model("hrnet_tiny"), path)
    assert not marker.exists()  # nothing ran
    message = str(info.value)
    assert message.startswith(f"refusing to load {path}")
    assert "builtins.exec" in message and "weights_only=True" in message


def test_bad_paths_and_files(tmp_path):
    model = build_model("hrnet_tiny")
    missing = tmp_path / "nope" / "model_best.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(f"checkpoint file not found: {missing}")):
        load_checkpoint(model, missing)
    with pytest.raises(CheckpointError, match="not a file"):
        load_checkpoint(model, tmp_path)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match=f"{garbage}: not a readable PyTorch checkpoint"):
        load_checkpoint(model, garbage)
    bad_st = tmp_path / "garbage.safetensors"
    bad_st.write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(model, bad_st)
    no_weights = tmp_path / "log.pth"
    torch.save({"epoch": 3, "lr": 0.001}, no_weights)
    with pytest.raises(CheckpointError, match=r"found no weights.*top-level keys are epoch, lr"):
        load_checkpoint(model, no_weights)
    with pytest.raises(CheckpointError, match=r"no entry 'ema'; the file's top-level keys"):
        load_checkpoint(model, no_weights, key="ema")
    not_tensors = tmp_path / "mixed.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1), "note": "hi"}}, not_tensors)
    with pytest.raises(CheckpointError, match="entries that are not tensors: note"):
        load_checkpoint(model, not_tensors)


# --- our own format ---------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_save_and_load_own_checkpoint(tmp_path, suffix):
    torch.manual_seed(0)
    source = build_model("hrnet_tiny")
    path = tmp_path / f"epoch_3{suffix}"
    meta = {"model": "hrnet_tiny", "num_joints": 17, "epoch": 3, "ap": 0.5}
    assert save_checkpoint(source, path, meta=meta) == path
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temporary left
    model = build_model("hrnet_tiny")
    report = load_checkpoint(model, path)
    assert report.source == "darkpose" and report.ok
    assert report.meta["epoch"] == 3 and report.meta["architecture"] == "HRNet"
    assert "darkpose_version" in report.meta
    assert_loaded(model, source.state_dict())

    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        save_checkpoint(source, path)
    save_checkpoint(build_model("hrnet_tiny"), path, overwrite=True)
    with pytest.raises(ValueError, match="meta must be JSON data"):
        save_checkpoint(source, tmp_path / f"x{suffix}", meta={"when": object()})
    assert not (tmp_path / f"x{suffix}").exists()


def test_save_checkpoint_rejects_unknown_suffix_and_missing_directory(tmp_path):
    model = build_model("hrnet_tiny")
    with pytest.raises(ValueError, match="suffix must be .pth, .pt or .safetensors"):
        save_checkpoint(model, tmp_path / "model.ckpt")
    with pytest.raises(FileNotFoundError, match=r"model\.pth: the directory .*no does not exist"):
        save_checkpoint(model, tmp_path / "no" / "model.pth")


# --- dtypes, non-finite weights, keys, meta, suffix case, tied tensors, races ----------------


def small_model() -> nn.Module:
    """Conv + BatchNorm: float weights and buffers, an int64 num_batches_tracked counter."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.complex64])
def test_dtype_of_another_kind_is_refused(tmp_path, dtype):
    state = small_model().state_dict()
    state["0.weight"] = torch.ones(state["0.weight"].shape, dtype=dtype)
    path = tmp_path / "cast.pth"
    torch.save(state, path)
    model = small_model()
    before = model[0].weight.detach().clone()
    message = f"0.weight (file {dtype}, model torch.float32)"
    with pytest.raises(CheckpointError, match=re.escape(message)) as info:
        load_checkpoint(model, path)
    assert str(info.value).startswith(f"checkpoint {path}: 1 tensors have a dtype")
    torch.testing.assert_close(model[0].weight.detach(), before, rtol=0, atol=0)  # unchanged


def test_float_into_an_integer_buffer_is_refused_but_another_float_precision_loads():
    state = {k: v.clone() for k, v in small_model().state_dict().items()}
    state["1.num_batches_tracked"] = torch.tensor(3.0)
    with pytest.raises(CheckpointError, match=re.escape(
            "1.num_batches_tracked (file torch.float32, model torch.int64)")):
        apply_state_dict(small_model(), state)
    state["1.num_batches_tracked"] = torch.tensor(3, dtype=torch.int32)  # integer: converted
    state["0.weight"] = torch.full(state["0.weight"].shape, 0.1, dtype=torch.float16)
    model = small_model()
    assert apply_state_dict(model, state).ok
    assert model[0].weight.dtype == torch.float32 and int(model[1].num_batches_tracked) == 3
    torch.testing.assert_close(model[0].weight.detach(), torch.full((4, 3, 3, 3), 0.0999755859375),
                               rtol=0, atol=0)  # float16(0.1), widened exactly


def test_non_finite_weights_load_with_a_warning_naming_them():
    state = {k: v.clone() for k, v in small_model().state_dict().items()}
    state["0.weight"][0, 0, 0, :2] = float("nan")
    state["1.running_var"][1] = float("inf")
    model = small_model()
    with pytest.warns(RuntimeWarning, match=re.escape(
            "<state_dict>: 2 tensors hold NaN or Inf values (loaded as they are; the model's "
            "output will not be finite): 0.weight (2 of 108 values), 1.running_var (1 of 4 "
            "values)")):
        apply_state_dict(model, state)
    assert int(model[0].weight.isnan().sum()) == 2  # loaded as they are
    finite = {k: v.clone() for k, v in small_model().state_dict().items()}
    finite["0.bias"] = torch.full((4,), 60000.0, dtype=torch.float16)  # its sum overflows float16
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        apply_state_dict(model, finite)  # finite values: no warning
    many = {f"{i}.weight": torch.full((2,), float("nan")) for i in range(7)}
    seven = nn.Sequential(*(nn.Linear(1, 2, bias=False) for _ in range(7)))
    with pytest.warns(RuntimeWarning, match=r"7 tensors hold NaN.*4\.weight \(2 of 2 values\), "
                                            r"\.\.\. and 2 more$"):
        apply_state_dict(seven, {k: v.reshape(2, 1) for k, v in many.items()})


def test_keys_that_are_not_strings_are_refused(tmp_path):
    plain = tmp_path / "int_keys.pth"
    torch.save({0: torch.zeros(2), 1: torch.zeros(2)}, plain)
    with pytest.raises(CheckpointError, match=re.escape(
            f"{plain}: the state_dict has keys that are not strings: 0 (int), 1 (int); "
            "expected parameter names such as 'conv1.weight'")):
        load_checkpoint(small_model(), plain)
    nested = tmp_path / "training.pth"
    torch.save({"epoch": 1, "state_dict": {"0.weight": torch.zeros(2), 7: torch.zeros(2)}}, nested)
    with pytest.raises(CheckpointError, match=re.escape(
            f"{nested}: entry 'state_dict' has keys that are not strings: 7 (int)")):
        read_checkpoint(nested)
    with pytest.raises(CheckpointError, match="the state_dict to save has keys that are not"):
        save_checkpoint({3: torch.zeros(2)}, tmp_path / "out.pth")


def test_meta_that_is_not_a_dict_is_refused(tmp_path):
    pth = tmp_path / "meta_list.pth"
    torch.save({"format": "darkpose", "format_version": 1, "meta": [1, 2],
                "state_dict": small_model().state_dict()}, pth)
    with pytest.raises(CheckpointError, match=re.escape(
            f"{pth}: 'meta' is a list; expected a dict of JSON data")):
        read_checkpoint(pth)
    st = tmp_path / "meta_str.safetensors"
    save_file(small_model().state_dict(), st, metadata={"format": "darkpose", "meta": '"hi"'})
    with pytest.raises(CheckpointError, match=re.escape(f"{st}: 'meta' is a str; expected a dict")):
        read_checkpoint(st)
    with pytest.raises(CheckpointError, match=r"meta is a list; expected a dict of JSON data"):
        save_checkpoint(small_model(), tmp_path / "x.pth", meta=[("epoch", 3)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta_list.pth", "meta_str.safetensors"]


def test_suffix_case_does_not_change_the_format(tmp_path):
    source = small_model()
    upper = tmp_path / "MODEL.SAFETENSORS"
    save_file(source.state_dict(), upper)  # read as safetensors, not as a pickle
    assert read_checkpoint(upper).source == "safetensors"
    mixed = tmp_path / "epoch_1.SafeTensors"
    save_checkpoint(source, mixed, meta={"epoch": 1})
    assert mixed.read_bytes()[8:10] == b'{"'  # safetensors: 8-byte length, then JSON header
    report = load_checkpoint(small_model(), mixed)
    assert report.source == "darkpose" and report.meta["epoch"] == 1


class Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encode = nn.Linear(3, 3, bias=False)
        self.decode = nn.Linear(3, 3, bias=False)
        self.decode.weight = self.encode.weight  # tied weights


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_tied_tensors_are_saved(tmp_path, suffix):
    torch.manual_seed(0)
    source = Tied()
    path = save_checkpoint(source, tmp_path / f"tied{suffix}")
    state = read_checkpoint(path).state_dict
    assert sorted(state) == ["decode.weight", "encode.weight"]
    shared = state["encode.weight"].data_ptr() == state["decode.weight"].data_ptr()
    assert shared == (suffix == ".pth")  # safetensors stores two copies
    model = Tied()
    assert load_checkpoint(model, path).ok
    assert model.decode.weight is model.encode.weight  # still tied
    torch.testing.assert_close(model.encode.weight, source.encode.weight, rtol=0, atol=0)


def test_saving_onto_a_directory_is_refused(tmp_path):
    folder = tmp_path / "best.pth"
    folder.mkdir()
    for overwrite in (False, True):
        with pytest.raises(CheckpointError, match=re.escape(
                f"cannot save the checkpoint: {folder} is a directory; expected a file name")):
            save_checkpoint(small_model(), folder, overwrite=overwrite)
    assert list(folder.iterdir()) == []


def test_a_file_appearing_during_the_save_is_not_replaced(tmp_path, monkeypatch):
    path = tmp_path / "model.pth"
    real_save = torch.save

    def save_while_another_run_writes(obj, file):
        path.write_text("another run's checkpoint")  # after the pre-check, before the link
        real_save(obj, file)

    monkeypatch.setattr(torch, "save", save_while_another_run_writes)
    with pytest.raises(FileExistsError, match=re.escape(
            f"checkpoint {path} already exists; pass overwrite=True to overwrite it")):
        save_checkpoint(small_model(), path)
    assert path.read_text() == "another run's checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["model.pth"]  # no temporary left
    save_checkpoint(small_model(), path, overwrite=True)  # asked: replaced
    monkeypatch.undo()
    assert load_checkpoint(small_model(), path).source == "darkpose"
