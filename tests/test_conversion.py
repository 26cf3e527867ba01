"""Conversion of original checkpoints and configs: key coverage for the whole model zoo, tiny round trips, safety."""

import gzip
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation
from modeling_video_mask2former.cli import main
from modeling_video_mask2former.conversion import (
    PRESETS,
    ConversionError,
    UnsafeCheckpointError,
    UnsupportedConfigError,
    config_from_detectron2,
    convert_checkpoint,
    load_detectron2_config,
    load_original_state_dict,
    map_state_dict,
    rename_state_dict,
)
from modeling_video_mask2former.conversion.checkpoint import cached_checkpoint_path
from modeling_video_mask2former.conversion.detectron2_config import DEFAULTS, video_processor_kwargs_from_detectron2
from modeling_video_mask2former.data.categories import load_categories


FIXTURES = Path(__file__).parent / "fixtures"
TINY = FIXTURES / "tiny"
TINY_MODELS = {
    "tiny_r50": (TINY / "tiny_r50.pkl", TINY / "tiny_r50_config.yaml"),
    "tiny_swin": (TINY / "tiny_swin.pth", TINY / "tiny_swin_config.yaml"),
}
# The overrides that made the tiny models from the real YouTube-VIS 2019 yaml files (reference tiny_manifest.json)
TINY_HEAD_OVERRIDES = {
    "MODEL.SEM_SEG_HEAD.CONVS_DIM": 32,
    "MODEL.SEM_SEG_HEAD.MASK_DIM": 32,
    "MODEL.MASK_FORMER.HIDDEN_DIM": 32,
    "MODEL.MASK_FORMER.NHEADS": 4,
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD": 64,
    "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 20,
}
TINY_OVERRIDES = {
    "tiny_r50": (
        "ytvis_2019_R50",
        {
            "MODEL.RESNETS.STEM_OUT_CHANNELS": 16,
            "MODEL.RESNETS.RES2_OUT_CHANNELS": 32,
            "MODEL.RESNETS.WIDTH_PER_GROUP": 8,
        },
    ),
    "tiny_swin": (
        "ytvis_2019_swin_tiny",
        {
            "MODEL.SWIN.EMBED_DIM": 16,
            "MODEL.SWIN.DEPTHS": [2, 2, 2, 2],
            "MODEL.SWIN.NUM_HEADS": [2, 4, 8, 16],
            "MODEL.SWIN.WINDOW_SIZE": 7,
        },
    ),
}
with gzip.open(FIXTURES / "conversion" / "zoo_manifests.json.gz") as file:
    MANIFESTS = json.load(file)["manifests"]
PRESET_BY_CONFIG = {preset.config: preset for preset in PRESETS.values()}


def expected_dropped(keys: list[str]) -> dict[str, str]:
    """The original keys every conversion drops, with the reason's first word."""
    dropped = {"criterion.empty_weight": "loss"}
    dropped.update({key: "recomputed" for key in keys if key.endswith("attn.relative_position_index")})
    return dropped


def test_presets_cover_the_model_zoo():
    assert len(PRESETS) == 18 == len(MANIFESTS)
    assert sorted(PRESET_BY_CONFIG) == sorted(manifest["config"] for manifest in MANIFESTS)
    for manifest in MANIFESTS:
        preset = PRESET_BY_CONFIG[manifest["config"]]
        assert preset.config_path.is_file()
        assert preset.checkpoint_url == manifest["checkpoint_url"]
        assert preset.reported_ap == manifest["reported_AP"]
    for year in (2019, 2021):
        for backbone in ("R50", "R101", "swin_tiny", "swin_small", "swin_base", "swin_large"):
            assert f"ytvis_{year}_{backbone}" in PRESETS and f"coco_{backbone}" in PRESETS


@pytest.mark.parametrize("manifest", MANIFESTS, ids=lambda manifest: PRESET_BY_CONFIG[manifest["config"]].name)
def test_zoo_manifest_converts_every_key(manifest):
    preset = PRESET_BY_CONFIG[manifest["config"]]
    original = load_detectron2_config(preset.config_path)
    merged = manifest["merged_config"]
    for key in DEFAULTS:
        if key in merged:  # COCO image configs lack the video-only INPUT.SAMPLING_FRAME_* keys
            assert original[key] == merged[key], key

    config = config_from_detectron2(original)
    assert config.hidden_dim == merged["MODEL.MASK_FORMER.HIDDEN_DIM"]
    assert config.num_attention_heads == merged["MODEL.MASK_FORMER.NHEADS"]
    assert config.dim_feedforward == merged["MODEL.MASK_FORMER.DIM_FEEDFORWARD"]
    assert config.decoder_layers == merged["MODEL.MASK_FORMER.DEC_LAYERS"]
    assert config.num_queries == merged["MODEL.MASK_FORMER.NUM_OBJECT_QUERIES"]
    assert config.num_labels == merged["MODEL.SEM_SEG_HEAD.NUM_CLASSES"]
    assert config.encoder_layers == merged["MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS"]
    assert config.feature_size == merged["MODEL.SEM_SEG_HEAD.CONVS_DIM"]
    assert config.mask_feature_size == merged["MODEL.SEM_SEG_HEAD.MASK_DIM"]
    assert config.encoder_feedforward_dim == 1024
    assert config.test_min_size == merged["INPUT.MIN_SIZE_TEST"]
    assert config.test_max_size == merged["INPUT.MAX_SIZE_TEST"]
    if preset.name.startswith("ytvis"):
        categories = load_categories(preset.name[:10])
        assert [config.id2label[i] for i in range(40)] == [category["name"] for category in categories]
    else:
        assert config.id2label[0] == "person" and config.id2label[79] == "toothbrush"

    with torch.device("meta"):
        model = VideoMask2FormerForVideoInstanceSegmentation(config)
    checkpoint = {key: torch.empty(shape, device="meta") for key, shape in manifest["state_dict"]}
    tensors, report = map_state_dict(checkpoint, model)

    model_state = model.state_dict()
    assert tensors.keys() == report.converted.keys()
    assert tensors.keys() | report.model_only.keys() == model_state.keys()
    assert all(tensors[key].shape == model_state[key].shape for key in tensors)
    for key, reason in report.model_only.items():
        assert key == "criterion.empty_weight" or key.endswith(
            ("num_batches_tracked", "swin.layernorm.weight", "swin.layernorm.bias")
        ), (key, reason)

    keys = [key for key, _ in manifest["state_dict"]]
    dropped = expected_dropped(keys)
    assert {key: reason.split()[0].rstrip(":") for key, reason in report.dropped.items()} == dropped
    assert set(report.converted.values()) | set(dropped) == set(keys)
    shapes = dict(manifest["state_dict"])
    kept_numel = sum(torch.Size(shapes[key]).numel() for key in keys if key not in dropped)
    assert sum(tensor.numel() for tensor in tensors.values()) == kept_numel


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_merged_dump_equals_yaml_chain_with_overrides(name):
    preset, backbone_overrides = TINY_OVERRIDES[name]
    from_chain = load_detectron2_config(PRESETS[preset].config_path, {**backbone_overrides, **TINY_HEAD_OVERRIDES})
    from_dump = load_detectron2_config(TINY_MODELS[name][1])
    assert config_from_detectron2(from_chain).to_dict() == config_from_detectron2(from_dump).to_dict()


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_tiny_checkpoint_converts_and_round_trips(name, tmp_path):
    checkpoint, config = TINY_MODELS[name]
    output = tmp_path / name
    report = convert_checkpoint(checkpoint, config, output)

    original = load_original_state_dict(checkpoint)
    expected = expected_dropped(list(original))
    assert {key: reason.split()[0].rstrip(":") for key, reason in report.dropped.items()} == expected
    if name == "tiny_swin":
        assert all(
            report.dropped[key] == "recomputed by the model (checked equal)"
            for key in expected
            if key != "criterion.empty_weight"
        )
    assert set(report.converted.values()) | set(expected) == set(original)

    reloaded = VideoMask2FormerForVideoInstanceSegmentation.from_pretrained(output)
    state = reloaded.state_dict()
    renamed = rename_state_dict(original)
    assert renamed.tensors.keys() == report.converted.keys()
    for key, tensor in renamed.tensors.items():
        assert torch.equal(state[key], tensor), key

    saved_config = json.loads((output / "config.json").read_text())
    assert saved_config["auto_map"]["AutoModel"].endswith("VideoMask2FormerForVideoInstanceSegmentation")
    assert saved_config["auto_map"]["AutoConfig"].endswith("VideoMask2FormerConfig")
    processor_config = json.loads((output / "video_preprocessor_config.json").read_text())
    shortest_edge = {"tiny_r50": 360, "tiny_swin": 480}[name]
    assert saved_config["test_min_size"] == shortest_edge
    assert processor_config["size"] == {"shortest_edge": shortest_edge, "longest_edge": 1333}
    assert processor_config["image_mean"] == [123.675, 116.28, 103.53]
    assert processor_config["auto_map"]["AutoVideoProcessor"].endswith("VideoMask2FormerVideoProcessor")
    assert (output / "README.md").is_file()
    assert not [path for path in tmp_path.iterdir() if path.name.startswith(".")]


def test_numpy1_pickle_and_legacy_keys_load_the_same(tmp_path):
    checkpoint = load_original_state_dict(TINY / "tiny_r50.pkl")
    legacy = {}
    for key, tensor in checkpoint.items():
        key = key.replace("sem_seg_head.pixel_decoder.", "sem_seg_head.")
        key = key.replace("predictor.query_feat.", "predictor.static_query.")
        legacy[key] = tensor.numpy()
    data = pickle.dumps({"model": legacy, "__author__": "test"}, protocol=2)
    assert b"numpy._core.multiarray" in data
    path = tmp_path / "legacy.pkl"
    path.write_bytes(data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))

    loaded = load_original_state_dict(path)
    assert loaded.keys() == legacy.keys()
    renamed, reference = rename_state_dict(loaded), rename_state_dict(checkpoint)
    assert renamed.tensors.keys() == reference.tensors.keys()
    assert all(torch.equal(renamed.tensors[key], reference.tensors[key]) for key in reference.tensors)


def test_url_checkpoint_is_read_from_the_cache(tmp_path, monkeypatch):
    url = "https://example.invalid/models/tiny_r50.pkl"
    monkeypatch.setenv("VIDEO_MASK2FORMER_CACHE", str(tmp_path / "cache"))
    cached = cached_checkpoint_path(url)
    assert cached.parent.parent == tmp_path / "cache" and cached.name == "tiny_r50.pkl"
    cached.parent.mkdir(parents=True)
    shutil.copy(TINY_MODELS["tiny_r50"][0], cached)
    report = convert_checkpoint(url, TINY_MODELS["tiny_r50"][1], tmp_path / "out", verify=False)
    assert report.checkpoint == url and "`tiny_r50.pkl`" not in (tmp_path / "out" / "README.md").read_text()


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_malicious_checkpoint_is_refused_without_running(suffix, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    payload = {"model": {"backbone.stem.conv1.weight": _Payload(marker)}}
    if suffix == ".pkl":
        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save(payload, path)

    with pytest.raises(UnsafeCheckpointError, match=r"system"):
        load_original_state_dict(path)
    assert not marker.exists()

    output = tmp_path / "out"
    assert (
        main(
            [
                "convert",
                "--checkpoint",
                str(path),
                "--config",
                str(TINY_MODELS["tiny_r50"][1]),
                "--output-dir",
                str(output),
            ]
        )
        == 2
    )
    assert not marker.exists() and not output.exists()


def test_pickle_of_other_globals_is_refused(tmp_path):
    path = tmp_path / "eval.pkl"
    path.write_bytes(b"cbuiltins\neval\n(S'1+1'\ntR.")
    with pytest.raises(UnsafeCheckpointError, match=r"builtins\.eval"):
        load_original_state_dict(path)


def test_mismatched_checkpoint_names_keys_and_shapes(tmp_path):
    checkpoint, _ = TINY_MODELS["tiny_r50"]
    with pytest.raises(ConversionError) as error:
        convert_checkpoint(checkpoint, "ytvis_2019_R50", tmp_path / "out")
    message = str(error.value)
    assert (
        "backbone.stem.conv1.weight -> model.pixel_level_module.encoder.embedder.embedder.convolution.weight"
        in message
    )
    assert "checkpoint (16, 3, 7, 7) vs model (64, 3, 7, 7)" in message
    assert not (tmp_path / "out").exists()


def test_missing_and_unused_keys_fail(tmp_path):
    checkpoint = load_original_state_dict(TINY / "tiny_r50.pkl")
    config = config_from_detectron2(load_detectron2_config(TINY_MODELS["tiny_r50"][1]))
    with torch.device("meta"):
        model = VideoMask2FormerForVideoInstanceSegmentation(config)
    incomplete = {key: value for key, value in checkpoint.items() if "query_embed" not in key}
    with pytest.raises(
        ConversionError,
        match=r"1 model keys missing from the checkpoint: model\.transformer_module\.queries_embedder\.weight",
    ):
        map_state_dict(incomplete, model)

    extra = {**checkpoint, "ema.backbone.stem.conv1.weight": torch.zeros(1)}
    with pytest.raises(ConversionError, match=r"1 checkpoint keys without a place in the model: ema\.backbone"):
        map_state_dict(extra, model)
    _, report = map_state_dict(extra, model, strict=False)
    assert report.dropped["ema.backbone.stem.conv1.weight"] == "not used: no conversion rule matches it"


def test_interrupted_conversion_leaves_nothing(tmp_path, monkeypatch):
    def fail_midway(self, save_directory, *args, **kwargs):
        (Path(save_directory) / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(VideoMask2FormerForVideoInstanceSegmentation, "save_pretrained", fail_midway)
    checkpoint, config = TINY_MODELS["tiny_r50"]
    with pytest.raises(KeyboardInterrupt):
        convert_checkpoint(checkpoint, config, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path):
    checkpoint, config = TINY_MODELS["tiny_r50"]
    output = tmp_path / "out"
    output.mkdir()
    (output / "old.txt").write_text("old")
    with pytest.raises(FileExistsError):
        convert_checkpoint(checkpoint, config, output)
    convert_checkpoint(checkpoint, config, output, verify=False, overwrite=True)
    assert not (output / "old.txt").exists() and (output / "model.safetensors").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]


def test_cli_lists_presets(capsys):
    assert main(["convert", "--list-presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(PRESETS)
    assert "46.4" in lines[0] and "youtubevis_2019/video_maskformer2_R50_bs16_8ep.yaml" in lines[0]


def test_cli_converts_with_overrides(tmp_path, capsys):
    checkpoint, config = TINY_MODELS["tiny_swin"]
    output = tmp_path / "out"
    argv = ["convert", "--checkpoint", str(checkpoint), "--config", str(config), "--output-dir", str(output)]
    assert (
        main([*argv, "--override", "INPUT.MIN_SIZE_TEST=480", "--override", "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES=20"])
        == 0
    )
    assert "converted 417 checkpoint tensors" in capsys.readouterr().err
    assert json.loads((output / "config.json").read_text())["test_min_size"] == 480
    assert json.loads((output / "video_preprocessor_config.json").read_text())["size"]["shortest_edge"] == 480

    assert main([*argv[:-1], str(tmp_path / "other"), "--override", "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES=100"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1 and "(20, 32) vs model (100, 32)" in error
    assert main(["convert", "--config", str(config), "--output-dir", str(tmp_path / "x")]) == 2
    assert main(["convert", "--preset", "nope", "--output-dir", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "other").exists() and not (tmp_path / "x").exists()


def test_base_chain_is_relative_to_each_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.yaml").write_text(
        "MODEL:\n  MASK_FORMER:\n    NHEADS: 4\n    HIDDEN_DIM: 64\nINPUT:\n  MIN_SIZE_TRAIN: (360, 480)\n"
    )
    (tmp_path / "sub" / "child.yaml").write_text("_BASE_: ../base.yaml\nMODEL:\n  MASK_FORMER:\n    NHEADS: 2\n")
    config = load_detectron2_config(tmp_path / "sub" / "child.yaml", ["MODEL.MASK_FORMER.DEC_LAYERS=4"])
    assert config["MODEL.MASK_FORMER.NHEADS"] == 2
    assert config["MODEL.MASK_FORMER.HIDDEN_DIM"] == 64
    assert config["MODEL.MASK_FORMER.DEC_LAYERS"] == 4
    assert config["INPUT.MIN_SIZE_TRAIN"] == [360, 480]
    assert config["MODEL.MASK_FORMER.DIM_FEEDFORWARD"] == DEFAULTS["MODEL.MASK_FORMER.DIM_FEEDFORWARD"]

    with pytest.raises(KeyError, match="MODEL.MASK_FORMER.NOPE"):
        load_detectron2_config(tmp_path / "sub" / "child.yaml", ["MODEL.MASK_FORMER.NOPE=1"])
    with pytest.raises(TypeError, match="NHEADS"):
        load_detectron2_config(tmp_path / "sub" / "child.yaml", ["MODEL.MASK_FORMER.NHEADS=eight"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"MODEL.RESNETS.NUM_GROUPS": 32}, "NUM_GROUPS"),
        ({"MODEL.RESNETS.WIDTH_PER_GROUP": 32}, "WIDTH_PER_GROUP"),
        ({"MODEL.RESNETS.DEPTH": 18}, "DEPTH"),
        ({"MODEL.RESNETS.NORM": "GN"}, "RESNETS.NORM"),
        ({"MODEL.BACKBONE.NAME": "build_resnet_fpn_backbone"}, "BACKBONE.NAME"),
        ({"MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME": "BasePixelDecoder"}, "PIXEL_DECODER_NAME"),
        ({"MODEL.META_ARCHITECTURE": "GeneralizedRCNN"}, "META_ARCHITECTURE"),
        ({"MODEL.BACKBONE.NAME": "D2SwinTransformer", "MODEL.SWIN.APE": True}, "APE"),
        ({"MODEL.BACKBONE.NAME": "D2SwinTransformer", "MODEL.SWIN.QK_SCALE": 0.1}, "QK_SCALE"),
    ],
)
def test_unrepresentable_configs_are_refused(overrides, message):
    config = load_detectron2_config(PRESETS["ytvis_2019_R50"].config_path, overrides)
    with pytest.raises(UnsupportedConfigError, match=message):
        config_from_detectron2(config)


def test_config_mapping_details():
    config = load_detectron2_config(PRESETS["ytvis_2019_R50"].config_path, {"MODEL.RESNETS.STRIDE_IN_1X1": True})
    assert config_from_detectron2(config).backbone_config.downsample_in_bottleneck
    with pytest.raises(UnsupportedConfigError, match="INPUT.FORMAT"):
        video_processor_kwargs_from_detectron2({**config, "INPUT.FORMAT": "BGR"})
    swin = config_from_detectron2(load_detectron2_config(PRESETS["ytvis_2021_swin_large"].config_path))
    assert swin.backbone_config.embed_dim == 192 and swin.backbone_config.window_size == 12
    assert swin.backbone_config.image_size == 384 and swin.num_queries == 200 and swin.test_min_size == 360
    assert yaml.safe_load(PRESETS["ytvis_2021_swin_large"].config_path.read_text())["_BASE_"].startswith("../")
