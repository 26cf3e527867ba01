"""Read original detectron2 / Mask2Former yaml configs without detectron2 and map them to `VideoMask2FormerConfig`."""

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from transformers import ResNetConfig, SwinConfig

from ..configuration_video_mask2former import VideoMask2FormerConfig
from .categories import class_names_for


class UnsupportedConfigError(ValueError):
    """The original config describes a model that `VideoMask2FormerConfig` cannot represent."""


# The values `get_cfg()` + `add_maskformer2_config` + `add_maskformer2_video_config` give the keys this module reads,
# for yaml files that do not set them. For the 18 model-zoo configs the merged result equals the original's merged
# config on every one of these keys (checked against the reference manifests in the tests).
DEFAULTS: dict[str, Any] = {
    "MODEL.META_ARCHITECTURE": "GeneralizedRCNN",
    "MODEL.PIXEL_MEAN": [103.53, 116.28, 123.675],
    "MODEL.PIXEL_STD": [1.0, 1.0, 1.0],
    "MODEL.BACKBONE.NAME": "build_resnet_backbone",
    "MODEL.RESNETS.DEPTH": 50,
    "MODEL.RESNETS.OUT_FEATURES": ["res4"],
    "MODEL.RESNETS.NUM_GROUPS": 1,
    "MODEL.RESNETS.NORM": "FrozenBN",
    "MODEL.RESNETS.WIDTH_PER_GROUP": 64,
    "MODEL.RESNETS.STRIDE_IN_1X1": True,
    "MODEL.RESNETS.RES5_DILATION": 1,
    "MODEL.RESNETS.RES2_OUT_CHANNELS": 256,
    "MODEL.RESNETS.STEM_OUT_CHANNELS": 64,
    "MODEL.RESNETS.DEFORM_ON_PER_STAGE": [False, False, False, False],
    "MODEL.SWIN.PRETRAIN_IMG_SIZE": 224,
    "MODEL.SWIN.PATCH_SIZE": 4,
    "MODEL.SWIN.EMBED_DIM": 96,
    "MODEL.SWIN.DEPTHS": [2, 2, 6, 2],
    "MODEL.SWIN.NUM_HEADS": [3, 6, 12, 24],
    "MODEL.SWIN.WINDOW_SIZE": 7,
    "MODEL.SWIN.MLP_RATIO": 4.0,
    "MODEL.SWIN.QKV_BIAS": True,
    "MODEL.SWIN.QK_SCALE": None,
    "MODEL.SWIN.DROP_RATE": 0.0,
    "MODEL.SWIN.ATTN_DROP_RATE": 0.0,
    "MODEL.SWIN.DROP_PATH_RATE": 0.3,
    "MODEL.SWIN.APE": False,
    "MODEL.SWIN.PATCH_NORM": True,
    "MODEL.SWIN.OUT_FEATURES": ["res2", "res3", "res4", "res5"],
    "MODEL.SEM_SEG_HEAD.NAME": "SemSegFPNHead",
    "MODEL.SEM_SEG_HEAD.IN_FEATURES": ["p2", "p3", "p4", "p5"],
    "MODEL.SEM_SEG_HEAD.IGNORE_VALUE": 255,
    "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 54,
    "MODEL.SEM_SEG_HEAD.CONVS_DIM": 128,
    "MODEL.SEM_SEG_HEAD.COMMON_STRIDE": 4,
    "MODEL.SEM_SEG_HEAD.NORM": "GN",
    "MODEL.SEM_SEG_HEAD.MASK_DIM": 256,
    "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS": 0,
    "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME": "BasePixelDecoder",
    "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES": ["res3", "res4", "res5"],
    "MODEL.MASK_FORMER.DEEP_SUPERVISION": True,
    "MODEL.MASK_FORMER.NO_OBJECT_WEIGHT": 0.1,
    "MODEL.MASK_FORMER.CLASS_WEIGHT": 1.0,
    "MODEL.MASK_FORMER.DICE_WEIGHT": 1.0,
    "MODEL.MASK_FORMER.MASK_WEIGHT": 20.0,
    "MODEL.MASK_FORMER.NHEADS": 8,
    "MODEL.MASK_FORMER.DROPOUT": 0.1,
    "MODEL.MASK_FORMER.DIM_FEEDFORWARD": 2048,
    "MODEL.MASK_FORMER.DEC_LAYERS": 6,
    "MODEL.MASK_FORMER.PRE_NORM": False,
    "MODEL.MASK_FORMER.HIDDEN_DIM": 256,
    "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 100,
    "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE": "res5",
    "MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ": False,
    "MODEL.MASK_FORMER.SIZE_DIVISIBILITY": 32,
    "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME": "MultiScaleMaskedTransformerDecoder",
    "MODEL.MASK_FORMER.TRAIN_NUM_POINTS": 112 * 112,
    "MODEL.MASK_FORMER.OVERSAMPLE_RATIO": 3.0,
    "MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO": 0.75,
    "INPUT.FORMAT": "BGR",
    "INPUT.MIN_SIZE_TEST": 800,
    "INPUT.MAX_SIZE_TEST": 1333,
    "INPUT.SAMPLING_FRAME_NUM": 2,
    "INPUT.SAMPLING_FRAME_RANGE": 20,
    "DATASETS.TRAIN": [],
    "DATASETS.TEST": [],
}

FEATURE_NAMES = ["res2", "res3", "res4", "res5"]
STAGE_NAMES = ["stage1", "stage2", "stage3", "stage4"]
RESNET_DEPTHS = {50: [3, 4, 6, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}
# detectron2 norms that are a per-channel affine map with running statistics, i.e. `nn.BatchNorm2d` at inference
BATCH_NORMS = ("FrozenBN", "BN", "SyncBN", "nnSyncBN", "naiveSyncBN")


def _decode_value(value: Any) -> Any:
    """Decode a yaml value as yacs does: strings holding Python literals become values, tuples become lists."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
    if isinstance(value, (tuple, list)):
        return [_decode_value(item) if isinstance(item, (tuple, list)) else item for item in value]
    return value


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = _decode_value(value)
    return flat


def _load_yaml_with_bases(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in chain:
        raise ValueError(f"circular _BASE_ chain: {' -> '.join(str(p) for p in (*chain, path))}")
    with open(path, encoding="utf-8") as file:
        tree = yaml.safe_load(file) or {}
    if not isinstance(tree, Mapping):
        raise ValueError(f"{path} is not a detectron2 config: its top level is not a mapping")
    base = tree.pop("_BASE_", None)
    merged = {}
    if base is not None:
        base_path = Path(base).expanduser()
        merged = _load_yaml_with_bases(
            base_path if base_path.is_absolute() else path.parent / base_path, (*chain, path)
        )
    merged.update(_flatten(tree))
    return merged


def parse_override(text: str) -> tuple[str, Any]:
    """Split a `KEY=VALUE` override; the value is read as a Python literal or yaml scalar (`32`, `[2,2]`, `True`)."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r} is not of the form KEY=VALUE (e.g. MODEL.SEM_SEG_HEAD.CONVS_DIM=32)")
    value = value.strip()
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = yaml.safe_load(value) if value else ""
    return key.strip(), _decode_value(parsed)


def apply_overrides(config: dict[str, Any], overrides: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    """Return `config` with dotted-key overrides applied; keys must exist and keep their type (as in detectron2)."""
    items = overrides.items() if isinstance(overrides, Mapping) else (parse_override(text) for text in overrides)
    config = dict(config)
    for key, value in items:
        if key not in config:
            raise KeyError(f"unknown config key {key!r} in override")
        value = _decode_value(value)
        current = config[key]
        if current is not None and value is not None and not isinstance(value, type(current)):
            if not (isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool)):
                raise TypeError(f"override {key}={value!r}: expected {type(current).__name__} like {current!r}")
            value = float(value)
        config[key] = value
    return config


def load_detectron2_config(
    path: str | Path, overrides: Mapping[str, Any] | Iterable[str] | None = None
) -> dict[str, Any]:
    """
    Load an original yaml config as a flat `{"MODEL.X.Y": value}` dict: `_BASE_` files resolved (relative to the file
    naming them), unset keys taken from `DEFAULTS`, then `overrides` (a mapping or `KEY=VALUE` strings) applied.
    A fully merged dump (`cfg.dump()`) loads the same way.
    """
    config = {**DEFAULTS, **_load_yaml_with_bases(Path(path))}
    return apply_overrides(config, overrides or {})


def _require(config: Mapping[str, Any], key: str, allowed: Iterable[Any], why: str = "") -> None:
    allowed = list(allowed)
    if config[key] not in allowed:
        expected = " or ".join(repr(value) for value in allowed)
        raise UnsupportedConfigError(f"{key}={config[key]!r} is not supported (expected {expected}){why}")


def _resnet_config(config: Mapping[str, Any]) -> ResNetConfig:
    _require(config, "MODEL.RESNETS.DEPTH", RESNET_DEPTHS, ": only bottleneck ResNets are supported")
    _require(config, "MODEL.RESNETS.NUM_GROUPS", [1], ": grouped convolutions (ResNeXt) are not supported")
    _require(config, "MODEL.RESNETS.NORM", BATCH_NORMS)
    _require(config, "MODEL.RESNETS.RES5_DILATION", [1])
    _require(config, "MODEL.RESNETS.DEFORM_ON_PER_STAGE", [[False] * 4], ": deformable convolutions are not supported")
    _require(config, "MODEL.RESNETS.OUT_FEATURES", [FEATURE_NAMES])
    res2_channels = config["MODEL.RESNETS.RES2_OUT_CHANNELS"]
    bottleneck_channels = config["MODEL.RESNETS.WIDTH_PER_GROUP"] * config["MODEL.RESNETS.NUM_GROUPS"]
    if res2_channels != 4 * bottleneck_channels:
        raise UnsupportedConfigError(
            f"MODEL.RESNETS.WIDTH_PER_GROUP={bottleneck_channels} with RES2_OUT_CHANNELS={res2_channels} is not "
            "supported: transformers' bottleneck width is a quarter of the block's output channels"
        )
    return ResNetConfig(
        num_channels=3,
        embedding_size=config["MODEL.RESNETS.STEM_OUT_CHANNELS"],
        hidden_sizes=[res2_channels * 2**i for i in range(4)],
        depths=RESNET_DEPTHS[config["MODEL.RESNETS.DEPTH"]],
        layer_type="bottleneck",
        hidden_act="relu",
        downsample_in_first_stage=False,
        downsample_in_bottleneck=config["MODEL.RESNETS.STRIDE_IN_1X1"],
        out_features=STAGE_NAMES,
    )


def _swin_config(config: Mapping[str, Any]) -> SwinConfig:
    _require(config, "MODEL.SWIN.APE", [False], ": absolute position embeddings are not supported")
    _require(config, "MODEL.SWIN.PATCH_NORM", [True])
    _require(config, "MODEL.SWIN.QK_SCALE", [None], ": transformers scales attention by head_dim ** -0.5")
    _require(config, "MODEL.SWIN.OUT_FEATURES", [FEATURE_NAMES])
    return SwinConfig(
        image_size=config["MODEL.SWIN.PRETRAIN_IMG_SIZE"],
        patch_size=config["MODEL.SWIN.PATCH_SIZE"],
        num_channels=3,
        embed_dim=config["MODEL.SWIN.EMBED_DIM"],
        depths=list(config["MODEL.SWIN.DEPTHS"]),
        num_heads=list(config["MODEL.SWIN.NUM_HEADS"]),
        window_size=config["MODEL.SWIN.WINDOW_SIZE"],
        mlp_ratio=float(config["MODEL.SWIN.MLP_RATIO"]),
        qkv_bias=config["MODEL.SWIN.QKV_BIAS"],
        hidden_dropout_prob=config["MODEL.SWIN.DROP_RATE"],
        attention_probs_dropout_prob=config["MODEL.SWIN.ATTN_DROP_RATE"],
        drop_path_rate=config["MODEL.SWIN.DROP_PATH_RATE"],
        hidden_act="gelu",
        use_absolute_embeddings=False,
        out_features=STAGE_NAMES,
    )


def config_from_detectron2(config: Mapping[str, Any]) -> VideoMask2FormerConfig:
    """Map a flat original config (see `load_detectron2_config`) to `VideoMask2FormerConfig`, or refuse it."""
    _require(config, "MODEL.META_ARCHITECTURE", ["VideoMaskFormer", "MaskFormer"])
    _require(config, "MODEL.SEM_SEG_HEAD.NAME", ["MaskFormerHead"])
    _require(config, "MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME", ["MSDeformAttnPixelDecoder"])
    _require(config, "MODEL.SEM_SEG_HEAD.IN_FEATURES", [FEATURE_NAMES])
    _require(config, "MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES", [FEATURE_NAMES[1:]])
    _require(config, "MODEL.SEM_SEG_HEAD.NORM", ["GN"])
    _require(config, "MODEL.SEM_SEG_HEAD.COMMON_STRIDE", [4, 8])
    _require(
        config,
        "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME",
        ["VideoMultiScaleMaskedTransformerDecoder", "MultiScaleMaskedTransformerDecoder"],
    )
    _require(config, "MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE", ["multi_scale_pixel_decoder"])

    backbone_name = config["MODEL.BACKBONE.NAME"]
    if backbone_name == "build_resnet_backbone":
        backbone_config = _resnet_config(config)
    elif backbone_name == "D2SwinTransformer":
        backbone_config = _swin_config(config)
    else:
        raise UnsupportedConfigError(
            f"MODEL.BACKBONE.NAME={backbone_name!r} is not supported (expected 'build_resnet_backbone' or "
            "'D2SwinTransformer')"
        )

    num_classes = config["MODEL.SEM_SEG_HEAD.NUM_CLASSES"]
    names = class_names_for([*config["DATASETS.TRAIN"], *config["DATASETS.TEST"]], num_classes)
    id2label = {i: names[i] if names else f"LABEL_{i}" for i in range(num_classes)}
    return VideoMask2FormerConfig(
        backbone_config=backbone_config,
        id2label=id2label,
        label2id={label: i for i, label in id2label.items()},
        feature_size=config["MODEL.SEM_SEG_HEAD.CONVS_DIM"],
        mask_feature_size=config["MODEL.SEM_SEG_HEAD.MASK_DIM"],
        hidden_dim=config["MODEL.MASK_FORMER.HIDDEN_DIM"],
        encoder_feedforward_dim=1024,  # hard-coded in the original `MSDeformAttnPixelDecoder`
        encoder_layers=config["MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS"],
        decoder_layers=config["MODEL.MASK_FORMER.DEC_LAYERS"],
        num_attention_heads=config["MODEL.MASK_FORMER.NHEADS"],
        dropout=config["MODEL.MASK_FORMER.DROPOUT"],
        dim_feedforward=config["MODEL.MASK_FORMER.DIM_FEEDFORWARD"],
        pre_norm=config["MODEL.MASK_FORMER.PRE_NORM"],
        enforce_input_projection=config["MODEL.MASK_FORMER.ENFORCE_INPUT_PROJ"],
        common_stride=config["MODEL.SEM_SEG_HEAD.COMMON_STRIDE"],
        ignore_value=config["MODEL.SEM_SEG_HEAD.IGNORE_VALUE"],
        num_queries=config["MODEL.MASK_FORMER.NUM_OBJECT_QUERIES"],
        no_object_weight=config["MODEL.MASK_FORMER.NO_OBJECT_WEIGHT"],
        class_weight=config["MODEL.MASK_FORMER.CLASS_WEIGHT"],
        mask_weight=config["MODEL.MASK_FORMER.MASK_WEIGHT"],
        dice_weight=config["MODEL.MASK_FORMER.DICE_WEIGHT"],
        train_num_points=config["MODEL.MASK_FORMER.TRAIN_NUM_POINTS"],
        oversample_ratio=config["MODEL.MASK_FORMER.OVERSAMPLE_RATIO"],
        importance_sample_ratio=config["MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO"],
        use_auxiliary_loss=config["MODEL.MASK_FORMER.DEEP_SUPERVISION"],
        feature_strides=[4, 8, 16, 32],
        num_frames=config["INPUT.SAMPLING_FRAME_NUM"],
        sampling_frame_range=config["INPUT.SAMPLING_FRAME_RANGE"],
        test_top_k=10,
        test_min_size=config["INPUT.MIN_SIZE_TEST"],
        test_max_size=config["INPUT.MAX_SIZE_TEST"],
    )


def video_processor_kwargs_from_detectron2(config: Mapping[str, Any]) -> dict[str, Any]:
    """The original's test-time input pipeline as `VideoMask2FormerVideoProcessor` arguments (0-255 scale)."""
    _require(config, "INPUT.FORMAT", ["RGB"], ": the video processor feeds RGB frames")
    return {
        "image_mean": list(config["MODEL.PIXEL_MEAN"]),
        "image_std": list(config["MODEL.PIXEL_STD"]),
        "size": {"shortest_edge": config["INPUT.MIN_SIZE_TEST"], "longest_edge": config["INPUT.MAX_SIZE_TEST"]},
        "size_divisor": config["MODEL.MASK_FORMER.SIZE_DIVISIBILITY"],
    }
