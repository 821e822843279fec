"""The config tree: reading our YAML and the official yacs files, --set, validation, the
config commands and the shipped configs/."""

from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import pytest
import torch
import yaml

from darkpose.cli import main
from darkpose.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
    config_from_official,
    config_to_dict,
    default_blur_kernel,
    load_config,
    validate_config,
)
from darkpose.engine.model import build_model_from_config
from darkpose.models import HRNet, HRNetConfig, count_parameters, model_from_official_config

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "configs" / "demo_synthetic.yaml"  # the quick start's: its own recipe (tests/test_demo.py)
CONFIGS = sorted(p for p in (REPO / "configs").glob("*.yaml") if p != DEMO)

# official file -> (parameter count of the official model, README of official-formats; K)
OFFICIAL = {
    "coco/hrnet/w32_128x96_adam_lr1e-3.yaml": (28_536_113, 17),
    "coco/hrnet/w32_256x192_adam_lr1e-3.yaml": (28_536_113, 17),
    "coco/hrnet/w48_384x288_adam_lr1e-3.yaml": (63_595_745, 17),
    "coco/resnet/res50_256x192_d256x3_adam_lr1e-3.yaml": (33_999_697, 17),
    "mpii/hrnet/w32_256x256_adam_lr1e-3.yaml": (28_536_080, 16),
}


def write(tmp_path: Path, data, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    return path


def meta_parameters(cfg: Config, num_joints: int) -> int:
    with torch.device("meta"):  # shapes only: no memory, no initialisation work
        return count_parameters(build_model_from_config(cfg, num_joints))


def official_path(official_formats: Path, name: str) -> Path:
    return official_formats / "experiments" / name


def read_official(official_formats: Path, name: str) -> dict:
    return yaml.safe_load(official_path(official_formats, name).read_text())


# -- our format ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key", "suggestion"),
    [
        ("train:\n  lrr: 0.1\n", "train.lrr", "lr"),
        ("modle:\n  name: hrnet_w32\n", "modle", "model"),
        ("test:\n  blur_kernell: 3\n", "test.blur_kernell", "blur_kernel"),
    ],
)
def test_unknown_key_names_key_file_and_close_match(tmp_path, text, key, suggestion):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    message = str(e.value)
    assert str(path) in message and f"'{key}'" in message
    assert f"did you mean {suggestion}" in message


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("train:\n  epochs: ten\n", "train.epochs", "expected an integer"),
        ("train:\n  epochs: 2.5\n", "train.epochs", "expected an integer"),
        ("input:\n  image_size: 256\n", "input.image_size", "expected a list"),
        ("input:\n  image_size: [192, 256, 3]\n", "input.image_size", "list of 2 values"),
        ("test:\n  flip_test: 1\n", "test.flip_test", "true or false"),
        ("train:\n  lr: fast\n", "train.lr", "expected a number"),
        ("model:\n  options: [1, 2]\n", "model.options", "expected a mapping"),
        ("train: 3\n", "train.", "must be a mapping"),
    ],
)
def test_wrong_type_names_file_and_field(tmp_path, text, field, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(path) in str(e.value) and field in str(e.value) and expected in str(e.value)


def test_set_overrides_are_typed_by_the_dataclass():
    cfg = apply_overrides(Config(), [
        "train.lr=5e-4",  # YAML 1.1 reads 5e-4 as a string; the float field converts it
        "train.weight_decay=1e-4",
        "train.epochs=3",
        "train.lr_steps=[1, 2]",
        "train.grad_clip=null",
        "test.flip_test=false",
        "test.blur_kernel=5",
        "input.image_size=[96, 128]",
        "data.root=/data/coco",
        "model.name=hrnet",
        "model.options.width=16",  # free-form mapping: new keys allowed
    ])
    assert cfg.train.lr == 5e-4 and type(cfg.train.lr) is float
    assert cfg.train.weight_decay == 1e-4
    assert cfg.train.epochs == 3 and type(cfg.train.epochs) is int
    assert cfg.train.lr_steps == (1, 2)
    assert cfg.train.grad_clip is None
    assert cfg.test.flip_test is False
    assert cfg.test.blur_kernel == 5
    assert cfg.input.image_size == (96, 128)
    assert cfg.data.root == "/data/coco"
    assert cfg.model.options == {"width": 16}
    assert Config().train.lr == 1e-3  # the original is not changed


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("train.epochs=3.5", "train.epochs: expected an integer"),
        ("train.lrr=1", "unknown key 'train.lrr'; did you mean lr"),
        ("trian.lr=1", "unknown key 'trian'; did you mean train"),
        ("input.image_size.w=3", "'input.image_size' is a value, not a section"),
        ("train.lr", "expected key=value"),
        ("test.flip_test=yes please", "test.flip_test: expected true or false"),
    ],
)
def test_set_errors(override, expected):
    with pytest.raises(ConfigError) as e:
        apply_overrides(Config(), [override])
    assert expected in str(e.value)
    assert repr(override) in str(e.value)


def test_dict_round_trip_and_partial_files(tmp_path):
    cfg = apply_overrides(Config(), ["model.name=hrnet", "model.options.width=16",
                                     "train.lr_steps=[5]", "input.heatmap_size=[48, 64]"])
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert load_config(write(tmp_path, "")) == Config()  # an empty file: every default
    assert load_config(write(tmp_path, "train:\n  lr: 2.0e-3\n")).train == dataclasses.replace(
        Config().train, lr=2e-3)


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field", "expected"),
    [
        (["test.decode=darkk"], "test.decode", "did you mean 'dark'"),
        (["test.blur_kernel=4"], "test.blur_kernel", "odd integer from 1 to 101"),
        (["test.blur_kernel=103"], "test.blur_kernel", "odd integer from 1 to 101"),
        (["test.nms=nms"], "test.nms", "oks, soft, none"),
        (["train.optimizer=adamm"], "train.optimizer", "did you mean 'adam'"),
        (["train.schedule=step"], "train.schedule", "multistep, cosine"),
        (["train.loss=l1"], "train.loss", "mse, ohkm"),
        (["train.amp=fp8"], "train.amp", "none, bf16, fp16"),
        (["target.method=gauss"], "target.method", "unbiased, quantized"),
        (["data.dataset=crowdpose"], "data.dataset", "coco, mpii"),
        (["train.epochs=0"], "train.epochs", "[1, inf)"),
        (["train.batch_size=0"], "train.batch_size", "[1, inf)"),
        (["test.batch_size=-1"], "test.batch_size", "[1, inf)"),
        (["train.lr=0"], "train.lr", "(0, inf)"),
        (["train.lr=.nan"], "train.lr", "(0, inf)"),
        (["train.lr_steps=[200, 170]"], "train.lr_steps", "increasing"),
        (["data.workers=-1"], "data.workers", "[0, inf)"),
        (["model.name=hrnet_w33"], "model.name", "did you mean 'hrnet_w32'"),
        (["model.options.final_conv_kernl=3"], "model.options.final_conv_kernl",
         "did you mean final_conv_kernel"),
        (["target.sigma=0.1"], "target.sigma", "0.166667"),
        (["augment.flip_prob=2"], "augment.flip_prob", "[0, 1]"),
        (["input.convention=mmpose"], "input.convention", "darkpose"),
        (["input.image_size=[190, 256]"], "input.image_size", "multiples of 4"),
        (["input.heatmap_size=[96, 128]"], "input.heatmap_size", "expected [48, 64]"),
        (["model.name=simple_baseline_r50", "input.image_size=[200, 256]"], "input.image_size",
         "multiples of 32"),
        (["output_dir=''"], "output_dir", "a folder name"),
    ],
)
def test_each_validation_error_names_file_and_field(tmp_path, overrides, field, expected):
    path = write(tmp_path, "train:\n  epochs: 210\n")
    with pytest.raises(ConfigError) as e:
        load_config(path, overrides)
    message = str(e.value)
    assert message.startswith(str(path)), message
    assert f"{field}:" in message or f"'{field}'" in message, message
    assert expected in message, message


def test_the_defaults_and_edge_values_are_valid():
    validate_config(Config())
    validate_config(apply_overrides(Config(), [
        "test.blur_kernel=1", "test.blur_kernel=101", "data.workers=0", "train.lr_steps=[]",
        "model.name=simple_baseline_r50", "input.image_size=[224, 320]",
    ]))
    validate_config(apply_overrides(Config(), ["input.image_size=[100, 132]"]))  # HRNet: any 4k


def test_hrnet_name_builds_any_layout():
    cfg = apply_overrides(Config(), ["model.name=hrnet", "model.options.width=16"])
    with torch.device("meta"):
        expected = count_parameters(HRNet(17, HRNetConfig.official(16)))
    assert meta_parameters(cfg, 17) == expected
    bad = apply_overrides(Config(), ["model.name=hrnet", "model.options.width=16",
                                     "model.options.stages=[]"])
    with pytest.raises(ConfigError, match="model: cannot build 'hrnet'.*either width"):
        build_model_from_config(bad, 17)
    bad = apply_overrides(Config(), ["model.name=hrnet", "model.options.width='16'"])
    with pytest.raises(ConfigError, match="width: expected a positive integer, got '16'"):
        build_model_from_config(bad, 17)


# -- official yacs files -------------------------------------------------------------------


@pytest.mark.parametrize("name", OFFICIAL)
def test_official_file_loads_and_builds_the_official_model(official_formats, name):
    path = official_path(official_formats, name)
    ignored: list[str] = []
    cfg = load_config(path, ignored=ignored)
    count, num_joints = OFFICIAL[name]
    assert meta_parameters(cfg, num_joints) == count
    raw = yaml.safe_load(path.read_text())
    assert cfg.input.image_size == tuple(raw["MODEL"]["IMAGE_SIZE"])
    assert cfg.input.heatmap_size == tuple(raw["MODEL"]["HEATMAP_SIZE"])
    assert cfg.target.sigma == raw["MODEL"]["SIGMA"]
    assert (cfg.target.method, cfg.test.decode) == ("unbiased", "dark")
    assert cfg.test.blur_kernel == raw["TEST"]["BLUR_KERNEL"] == default_blur_kernel(cfg.input.image_size)
    assert cfg.test.flip_test is True
    assert cfg.data.dataset == raw["DATASET"]["DATASET"] and cfg.data.metadata == cfg.data.dataset
    assert cfg.data.root == f"data/{cfg.data.dataset}"
    assert cfg.data.workers == min(24, os.cpu_count())
    assert cfg.model.init_checkpoint == raw["MODEL"]["PRETRAINED"]
    assert cfg.train.batch_size == raw["TRAIN"]["BATCH_SIZE_PER_GPU"]
    assert cfg.train.lr_steps == tuple(raw["TRAIN"]["LR_STEP"])
    assert cfg.train.epochs == raw["TRAIN"]["END_EPOCH"]
    assert cfg.train.weight_decay == 0.0  # the official Adam ignores WD
    assert cfg.output_dir == f"output/{cfg.data.dataset}/{raw['MODEL']['NAME']}/{path.name[:-5]}"
    for key in ("CUDNN.BENCHMARK", "DEBUG.SAVE_HEATMAPS_PRED", "GPUS", "TRAIN.WD", "TEST.POST_PROCESS"):
        assert key in ignored
    assert len(ignored) == len(set(ignored))


def test_official_ignored_keys_exactly(official_formats):
    _, ignored = config_from_official(read_official(official_formats, "coco/hrnet/w32_256x192_adam_lr1e-3.yaml"))
    assert ignored == [
        "AUTO_RESUME", "CUDNN.BENCHMARK", "CUDNN.DETERMINISTIC", "CUDNN.ENABLED", "GPUS", "LOG_DIR",
        "PRINT_FREQ", "TRAIN.WD", "TRAIN.GAMMA1", "TRAIN.GAMMA2", "TRAIN.MOMENTUM", "TRAIN.NESTEROV",
        "TEST.BBOX_THRE", "TEST.NMS_THRE", "TEST.POST_PROCESS", "DEBUG.DEBUG",
        "DEBUG.SAVE_BATCH_IMAGES_GT", "DEBUG.SAVE_BATCH_IMAGES_PRED", "DEBUG.SAVE_HEATMAPS_GT",
        "DEBUG.SAVE_HEATMAPS_PRED", "MODEL.EXTRA.PRETRAINED_LAYERS",
    ]


def _leaves(raw: dict, prefix: str = ""):
    for key, value in raw.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _perturbed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return 1 if value > 1 else value + 1
    if isinstance(value, float):
        return abs(value) / 2 + 0.01
    if isinstance(value, str):
        return value + "x"
    return [_perturbed(v) for v in value]


def _mapped(raw: dict, where: str):
    try:
        cfg, ignored = config_from_official(raw, where)
        validate_config(cfg, where)
    except ConfigError:
        return "refused"
    return cfg, ignored


@pytest.mark.parametrize("name", OFFICIAL)
def test_every_official_key_is_honoured_or_reported(official_formats, name):
    """Changing a key that is not reported as ignored changes the config (or is refused);
    changing a reported one changes nothing. So no key is dropped silently."""
    raw = read_official(official_formats, name)
    cfg, ignored = _mapped(raw, name)
    leaves = [(k, v) for k, v in _leaves(raw) if not k.startswith("MODEL.EXTRA.")]
    assert len(leaves) > 50
    for key, value in leaves:
        changed = copy.deepcopy(raw)
        node = changed
        *sections, last = key.split(".")
        for s in sections:
            node = node[s]
        node[last] = _perturbed(value)
        result = _mapped(changed, name)
        if key in ignored:
            assert result != "refused" and result[0] == cfg, key
        else:
            assert result != (cfg, ignored), key


def test_official_values_that_differ_from_the_released_files(official_formats):
    raw = read_official(official_formats, "coco/hrnet/w32_256x192_adam_lr1e-3.yaml")
    raw["TEST"].update(BLUR_KERNEL=5, SOFT_NMS=True, USE_GT_BBOX=False, MODEL_FILE="w32.pth", OKS_THRE=0.8)
    raw["TRAIN"].update(OPTIMIZER="sgd", WD=5e-4, BEGIN_EPOCH=10)
    raw["MODEL"]["PRETRAINED"] = ""
    raw["DATA_DIR"] = "/datasets"
    raw["LOSS"] = {"USE_OHKM": True, "USE_DIFFERENT_JOINTS_WEIGHT": True}
    del raw["TEST"]["FLIP_TEST"]  # absent: the official default (False)
    cfg, ignored = config_from_official(raw, "x.yaml")
    assert (cfg.test.blur_kernel, cfg.test.nms, cfg.test.use_gt_boxes, cfg.test.oks_thre) == (5, "soft", False, 0.8)
    assert cfg.test.detections == "data/coco/person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
    assert cfg.test.flip_test is False
    assert (cfg.train.optimizer, cfg.train.weight_decay, cfg.train.momentum) == ("sgd", 5e-4, 0.9)
    assert (cfg.train.loss, cfg.target.use_joint_weights) == ("ohkm", True)
    assert cfg.model.init_checkpoint is None
    assert cfg.data.root == "/datasets/data/coco"
    assert "TRAIN.WD" not in ignored and "TRAIN.MOMENTUM" not in ignored
    assert "TRAIN.BEGIN_EPOCH" in ignored and "TEST.MODEL_FILE" in ignored


def test_official_layout_that_is_no_registered_name_builds_exactly(official_formats):
    raw = read_official(official_formats, "coco/hrnet/w32_256x192_adam_lr1e-3.yaml")
    raw["MODEL"]["EXTRA"]["STAGE4"]["NUM_MODULES"] = 2
    raw["MODEL"]["EXTRA"]["STAGE3"]["NUM_BLOCKS"] = [2, 2, 2]
    cfg, _ = config_from_official(raw, "x.yaml")
    assert cfg.model.name == "hrnet"
    with torch.device("meta"):
        expected = count_parameters(model_from_official_config(raw))
    assert meta_parameters(cfg, 17) == expected != 28_536_113
    assert config_from_dict(config_to_dict(cfg)) == cfg  # the layout survives YAML


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda r: r["TRAIN"].update(LR_STPE=[1]), "unknown official key 'TRAIN.LR_STPE'; did you mean TRAIN.LR_STEP"),
        (lambda r: r.update(WORKER=2), "unknown official key 'WORKER'; did you mean WORKERS"),
        (lambda r: r["MODEL"].update(NUM_JOINTS=20), "MODEL.NUM_JOINTS: coco has 17 keypoints"),
        (lambda r: r["MODEL"].update(NAME="pose_vit"), "MODEL.NAME: expected pose_hrnet or pose_resnet"),
        (lambda r: r["MODEL"].update(TARGET_TYPE="offset"), "MODEL.TARGET_TYPE"),
        (lambda r: r["MODEL"].update(NAME="pose_resnet", EXTRA={"NUM_LAYERS": 77}), "MODEL.EXTRA.NUM_LAYERS"),
        (lambda r: r["MODEL"]["EXTRA"].pop("STAGE2"), "MODEL.EXTRA.STAGE2 is missing"),
        (lambda r: r["DATASET"].update(DATASET="crowdpose"), "DATASET.DATASET"),
        (lambda r: r.update(output_dir="runs"), "mixes official upper-case keys"),
        (lambda r: r["TRAIN"].update(LR="fast"), "TRAIN.LR: expected a value like the official default 0.001"),
        (lambda r: r["DATASET"].update(ROOT=None), "DATASET.ROOT: expected a value like the official default ''"),
        (lambda r: r["TEST"].update(FLIP_TEST=1), "TEST.FLIP_TEST: expected a value like the official default False"),
        (lambda r: r.update(TEST=[1]), "TEST: expected a mapping"),
    ],
)
def test_official_errors_name_file_and_key(official_formats, tmp_path, edit, expected):
    raw = read_official(official_formats, "coco/hrnet/w32_256x192_adam_lr1e-3.yaml")
    edit(raw)
    path = write(tmp_path, raw)
    with pytest.raises(ConfigError) as e:
        load_config(path)
    assert str(e.value).startswith(str(path)) and expected in str(e.value), str(e.value)


# -- the commands --------------------------------------------------------------------------


def test_config_show_prints_yaml_and_one_warning_line(official_formats, capsys):
    path = official_path(official_formats, "coco/hrnet/w32_128x96_adam_lr1e-3.yaml")
    assert main(["config", "show", str(path), "--set", "train.lr=5e-4"]) == 0
    out, err = capsys.readouterr()
    shown = config_from_dict(yaml.safe_load(out))
    assert shown == load_config(path, ["train.lr=5e-4"]) and shown.train.lr == 5e-4
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {path}:") and "CUDNN.BENCHMARK" in lines[0]
    assert main(["config", "show", str(path), "--set", "train.lrr=1"]) == 2
    assert "unknown key 'train.lrr'" in capsys.readouterr().err


@pytest.mark.parametrize("name", OFFICIAL)
def test_converted_file_loads_back_to_the_same_config(official_formats, tmp_path, name):
    path = official_path(official_formats, name)
    target = tmp_path / "new.yaml"
    assert main(["config", "convert", str(path), "-o", str(target)]) == 0
    ignored: list[str] = []
    assert load_config(target, ignored=ignored) == load_config(path)
    assert ignored == []  # ours now: nothing left to ignore


def test_convert_never_overwrites_without_force(official_formats, tmp_path, capsys):
    path = official_path(official_formats, "mpii/hrnet/w32_256x256_adam_lr1e-3.yaml")
    target = write(tmp_path, "mine: 1\n", "new.yaml")
    assert main(["config", "convert", str(path), "-o", str(target)]) == 2
    assert "--force" in capsys.readouterr().err
    assert target.read_text() == "mine: 1\n"
    assert main(["config", "convert", str(path), "-o", str(target), "--force"]) == 0
    assert load_config(target).data.dataset == "mpii"
    assert main(["config", "convert", str(path)]) == 0  # stdout
    assert config_from_dict(yaml.safe_load(capsys.readouterr().out)) == load_config(path)


# -- configs/ ------------------------------------------------------------------------------

# file -> (model parameters with the dataset's K where the official count is known, blur kernel)
SHIPPED = {
    "coco_hrnet_w32_128x96.yaml": (28_536_113, 3),
    "coco_hrnet_w32_256x192.yaml": (28_536_113, 11),
    "coco_hrnet_w32_384x288.yaml": (28_536_113, 11),
    "coco_hrnet_w48_384x288.yaml": (63_595_745, 11),
    "coco_simple_baseline_r50_256x192.yaml": (33_999_697, 11),
    "coco_hourglass_256x192.yaml": (25_598_472, 11),  # official hg8 key file
    "mpii_hrnet_w32_256x256.yaml": (28_536_080, 11),
}


def test_every_shipped_config_is_listed():
    assert [p.name for p in CONFIGS] == sorted(SHIPPED)
    assert DEMO.is_file()


def test_the_demo_config_is_a_small_hrnet_at_128x96():
    cfg = load_config(DEMO)
    assert meta_parameters(cfg, 17) == 697_601
    assert (tuple(cfg.input.image_size), cfg.target.sigma, cfg.test.blur_kernel) == ((96, 128), 2.0, 11)
    assert (cfg.target.method, cfg.test.decode, cfg.test.flip_test) == ("unbiased", "dark", True)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_config_loads_and_builds(path):
    cfg = load_config(path)
    count, blur = SHIPPED[path.name]
    num_joints = 16 if cfg.data.dataset == "mpii" else 17
    assert meta_parameters(cfg, num_joints) == count
    assert (cfg.target.method, cfg.test.decode, cfg.test.blur_kernel) == ("unbiased", "dark", blur)
    assert cfg.target.sigma == cfg.input.image_size[1] / 128  # 1, 2, 3 at heights 128, 256, 384
    assert cfg.data.root == f"data/{cfg.data.dataset}" and cfg.data.metadata == cfg.data.dataset
    assert cfg.train.optimizer == "adam" and cfg.train.lr_factor == 0.1
    assert cfg.output_dir == f"runs/{path.stem}"


def test_the_transform_takes_its_defaults_from_the_config_sections():
    """The augmentation has one home (the data layer's Augmentation is the config's section);
    the target defaults are written twice (TransformConfig and TargetConfig) and must agree."""
    import dataclasses

    from darkpose.config import AugmentConfig, TargetConfig
    from darkpose.data import Augmentation, TransformConfig

    assert AugmentConfig is Augmentation
    theirs = {f.name: f.default for f in dataclasses.fields(TransformConfig)}
    assert TransformConfig().augment == Config().augment == Augmentation()
    assert TargetConfig().method == theirs["encode_method"]
    assert TargetConfig().use_joint_weights == theirs["use_joint_weights"]
    assert TargetConfig().sigma is theirs["sigma"] is None
    assert tuple(Config().input.image_size) == theirs["image_size"]
    assert Config().input.convention == theirs["convention"]


