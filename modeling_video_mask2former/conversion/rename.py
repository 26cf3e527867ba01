"""
The key mapping from original (detectron2) Video Mask2Former state dicts to ours: the module tree of transformers'
`Mask2FormerForUniversalSegmentation`, which `VideoMask2FormerForVideoInstanceSegmentation` keeps.

Each rule's pattern is matched against the whole original key; the first matching rule applies. Targets are templates
over the pattern's named groups, where `{name}` copies a group and `{name-2}` / `{name+1}` shift an index. Names are
transformers' in-memory ones (Swin's v5 names; `save_pretrained` writes its legacy names and loading reverts them).
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch

from .checkpoint import normalize_legacy_keys


BACKBONE = "model.pixel_level_module.encoder."
SWIN = BACKBONE + "swin."
PIXEL_DECODER = "model.pixel_level_module.decoder."
TRANSFORMER = "model.transformer_module."
DECODER_LAYER = TRANSFORMER + "decoder.layers.{i}."

_SWIN_BLOCK = r"backbone\.layers\.(?P<stage>\d+)\.blocks\.(?P<block>\d+)\."
_SWIN_BLOCK_TARGET = SWIN + "encoder.layers.{stage}.blocks.{block}."
_ENCODER_LAYER = r"sem_seg_head\.pixel_decoder\.transformer\.encoder\.layers\.(?P<i>\d+)\."
_ENCODER_LAYER_TARGET = PIXEL_DECODER + "encoder.layers.{i}."
_PREDICTOR = r"sem_seg_head\.predictor\."
_PARAM = r"(?P<param>weight|bias)"
_BN_PARAM = r"(?P<param>weight|bias|running_mean|running_var)"

# (original key pattern, our key template)
RENAMES: list[tuple[str, str]] = [
    # ResNet: detectron2 `build_resnet_backbone` -> transformers `ResNetBackbone`
    (r"backbone\.stem\.conv1\.weight", BACKBONE + "embedder.embedder.convolution.weight"),
    (r"backbone\.stem\.conv1\.norm\." + _BN_PARAM, BACKBONE + "embedder.embedder.normalization.{param}"),
    (
        r"backbone\.res(?P<res>[2-5])\.(?P<block>\d+)\.shortcut\.weight",
        BACKBONE + "encoder.stages.{res-2}.layers.{block}.shortcut.convolution.weight",
    ),
    (
        r"backbone\.res(?P<res>[2-5])\.(?P<block>\d+)\.shortcut\.norm\." + _BN_PARAM,
        BACKBONE + "encoder.stages.{res-2}.layers.{block}.shortcut.normalization.{param}",
    ),
    (
        r"backbone\.res(?P<res>[2-5])\.(?P<block>\d+)\.conv(?P<conv>[1-3])\.weight",
        BACKBONE + "encoder.stages.{res-2}.layers.{block}.layer.{conv-1}.convolution.weight",
    ),
    (
        r"backbone\.res(?P<res>[2-5])\.(?P<block>\d+)\.conv(?P<conv>[1-3])\.norm\." + _BN_PARAM,
        BACKBONE + "encoder.stages.{res-2}.layers.{block}.layer.{conv-1}.normalization.{param}",
    ),
    # Swin: Mask2Former's `D2SwinTransformer` -> transformers `SwinBackbone` (qkv: see SPLITS)
    (r"backbone\.patch_embed\.proj\." + _PARAM, SWIN + "embeddings.patch_embeddings.projection.{param}"),
    (r"backbone\.patch_embed\.norm\." + _PARAM, SWIN + "embeddings.norm.{param}"),
    (_SWIN_BLOCK + r"norm1\." + _PARAM, _SWIN_BLOCK_TARGET + "layernorm_before.{param}"),
    (_SWIN_BLOCK + r"norm2\." + _PARAM, _SWIN_BLOCK_TARGET + "layernorm_after.{param}"),
    (_SWIN_BLOCK + r"attn\.proj\." + _PARAM, _SWIN_BLOCK_TARGET + "attention.o_proj.{param}"),
    (
        _SWIN_BLOCK + r"attn\.relative_position_bias_table",
        _SWIN_BLOCK_TARGET + "attention.relative_position_bias.relative_position_bias_table",
    ),
    (_SWIN_BLOCK + r"mlp\.fc(?P<fc>[12])\." + _PARAM, _SWIN_BLOCK_TARGET + "mlp.fc{fc}.{param}"),
    (
        r"backbone\.layers\.(?P<stage>\d+)\.downsample\.(?P<module>reduction|norm)\." + _PARAM,
        SWIN + "encoder.layers.{stage}.downsample.{module}.{param}",
    ),
    (r"backbone\.norm(?P<stage>[0-3])\." + _PARAM, BACKBONE + "hidden_states_norms.stage{stage+1}.{param}"),
    # Pixel decoder: `MSDeformAttnPixelDecoder` -> `Mask2FormerPixelDecoder`
    (
        r"sem_seg_head\.pixel_decoder\.input_proj\.(?P<level>\d+)\.(?P<module>[01])\." + _PARAM,
        PIXEL_DECODER + "input_projections.{level}.{module}.{param}",
    ),
    (r"sem_seg_head\.pixel_decoder\.transformer\.level_embed", PIXEL_DECODER + "level_embed"),
    (
        _ENCODER_LAYER
        + r"self_attn\.(?P<module>sampling_offsets|attention_weights|value_proj|output_proj)\."
        + _PARAM,
        _ENCODER_LAYER_TARGET + "self_attn.{module}.{param}",
    ),
    (_ENCODER_LAYER + r"norm1\." + _PARAM, _ENCODER_LAYER_TARGET + "self_attn_layer_norm.{param}"),
    (_ENCODER_LAYER + r"linear(?P<fc>[12])\." + _PARAM, _ENCODER_LAYER_TARGET + "fc{fc}.{param}"),
    (_ENCODER_LAYER + r"norm2\." + _PARAM, _ENCODER_LAYER_TARGET + "final_layer_norm.{param}"),
    (r"sem_seg_head\.pixel_decoder\.mask_features\." + _PARAM, PIXEL_DECODER + "mask_projection.{param}"),
    (
        r"sem_seg_head\.pixel_decoder\.(?P<module>adapter|layer)_(?P<level>\d+)\.weight",
        PIXEL_DECODER + "{module}_{level}.0.weight",
    ),
    (
        r"sem_seg_head\.pixel_decoder\.(?P<module>adapter|layer)_(?P<level>\d+)\.norm\." + _PARAM,
        PIXEL_DECODER + "{module}_{level}.1.{param}",
    ),
    # Transformer decoder: `(Video)MultiScaleMaskedTransformerDecoder` -> transformer module (in_proj: see SPLITS)
    (
        _PREDICTOR + r"transformer_self_attention_layers\.(?P<i>\d+)\.self_attn\.out_proj\." + _PARAM,
        DECODER_LAYER + "self_attn.out_proj.{param}",
    ),
    (
        _PREDICTOR + r"transformer_self_attention_layers\.(?P<i>\d+)\.norm\." + _PARAM,
        DECODER_LAYER + "self_attn_layer_norm.{param}",
    ),
    (
        _PREDICTOR + r"transformer_cross_attention_layers\.(?P<i>\d+)\.multihead_attn\."
        r"(?P<name>in_proj_weight|in_proj_bias|out_proj\.weight|out_proj\.bias)",
        DECODER_LAYER + "cross_attn.{name}",
    ),
    (
        _PREDICTOR + r"transformer_cross_attention_layers\.(?P<i>\d+)\.norm\." + _PARAM,
        DECODER_LAYER + "cross_attn_layer_norm.{param}",
    ),
    (
        _PREDICTOR + r"transformer_ffn_layers\.(?P<i>\d+)\.linear(?P<fc>[12])\." + _PARAM,
        DECODER_LAYER + "fc{fc}.{param}",
    ),
    (_PREDICTOR + r"transformer_ffn_layers\.(?P<i>\d+)\.norm\." + _PARAM, DECODER_LAYER + "final_layer_norm.{param}"),
    (_PREDICTOR + r"decoder_norm\." + _PARAM, TRANSFORMER + "decoder.layernorm.{param}"),
    (_PREDICTOR + r"query_feat\.weight", TRANSFORMER + "queries_features.weight"),  # content queries
    (_PREDICTOR + r"query_embed\.weight", TRANSFORMER + "queries_embedder.weight"),  # query positions
    (_PREDICTOR + r"level_embed\.weight", TRANSFORMER + "level_embed.weight"),
    (_PREDICTOR + r"input_proj\.(?P<level>\d+)\." + _PARAM, TRANSFORMER + "input_projections.{level}.{param}"),
    (_PREDICTOR + r"class_embed\." + _PARAM, "class_predictor.{param}"),
    (
        _PREDICTOR + r"mask_embed\.layers\.(?P<layer>\d+)\." + _PARAM,
        TRANSFORMER + "decoder.mask_predictor.mask_embedder.{layer}.0.{param}",
    ),
]

# Fused projections cut into equal parts along dim 0: (original key pattern, one template per part, in order)
SPLITS: list[tuple[str, tuple[str, ...]]] = [
    (
        _SWIN_BLOCK + r"attn\.qkv\." + _PARAM,
        tuple(_SWIN_BLOCK_TARGET + f"attention.{name}_proj.{{param}}" for name in "qkv"),
    ),
    (
        _PREDICTOR + r"transformer_self_attention_layers\.(?P<i>\d+)\.self_attn\.in_proj_(?P<param>weight|bias)",
        tuple(DECODER_LAYER + f"self_attn.{name}_proj.{{param}}" for name in "qkv"),
    ),
]

# Buffers the model recomputes: (original key pattern, the model's non-persistent buffer to compare with)
RECOMPUTED: list[tuple[str, str]] = [
    (
        _SWIN_BLOCK + r"attn\.relative_position_index",
        _SWIN_BLOCK_TARGET + "attention.relative_position_bias.relative_position_index",
    ),
]

# Original keys the model does not take: (pattern, why)
DROPPED: list[tuple[str, str]] = [
    (r"criterion\.empty_weight", "loss buffer: the model builds its own from no_object_weight"),
    (r"pixel_(mean|std)", "input normalisation: kept in the video processor config"),
]

# Model keys no original checkpoint holds; they keep the model's own values: (pattern, why)
MODEL_ONLY: list[tuple[str, str]] = [
    (r"criterion\.empty_weight", "loss buffer built from no_object_weight"),
    (re.escape(SWIN) + r"layernorm\.(weight|bias)", "final LayerNorm of SwinModel, unused by SwinBackbone"),
    (r".*\.num_batches_tracked", "BatchNorm step counter (detectron2's FrozenBN has none)"),
]

_PLACEHOLDER = re.compile(r"\{(\w+)([+-]\d+)?\}")


def _fill(template: str, match: re.Match) -> str:
    def replace(placeholder: re.Match) -> str:
        value = match[placeholder[1]]
        return str(int(value) + int(placeholder[2])) if placeholder[2] else value

    return _PLACEHOLDER.sub(replace, template)


def _first_match(rules: list[tuple[str, object]], key: str) -> tuple[re.Match, object] | None:
    for pattern, target in rules:
        match = re.fullmatch(pattern, key)
        if match:
            return match, target
    return None


def model_only_reason(key: str) -> str | None:
    """Why the model key `key` is not expected in an original checkpoint, or None if it is."""
    found = _first_match(MODEL_ONLY, key)
    return found[1] if found else None


@dataclass
class RenamedStateDict:
    """Our tensors, plus what happened to the original keys that did not become one of them."""

    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # our key -> original key
    # model buffer -> (original key, its value)
    recomputed: dict[str, tuple[str, torch.Tensor]] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)  # original key -> why
    unmatched: list[str] = field(default_factory=list)  # original keys no rule knows


def rename_state_dict(state_dict: Mapping[str, torch.Tensor]) -> RenamedStateDict:
    """Normalize legacy key forms, then apply `DROPPED`, `RECOMPUTED`, `SPLITS` and `RENAMES` to a state dict."""
    result = RenamedStateDict()

    def put(key: str, tensor: torch.Tensor, source: str) -> None:
        if key in result.tensors:
            raise ValueError(f"original keys {result.sources[key]!r} and {source!r} both map to {key!r}")
        result.tensors[key] = tensor
        result.sources[key] = source

    for key, tensor in normalize_legacy_keys(state_dict).items():
        if found := _first_match(DROPPED, key):
            result.dropped[key] = found[1]
        elif found := _first_match(RECOMPUTED, key):
            result.recomputed[_fill(found[1], found[0])] = (key, tensor)
        elif found := _first_match(SPLITS, key):
            match, templates = found
            if tensor.shape[0] % len(templates):
                raise ValueError(f"{key!r} of shape {tuple(tensor.shape)} cannot be cut into {len(templates)} parts")
            for template, part in zip(templates, tensor.chunk(len(templates), dim=0), strict=True):
                put(_fill(template, match), part.clone(), key)  # clone: parts must not share storage
        elif found := _first_match(RENAMES, key):
            put(_fill(found[1], found[0]), tensor, key)
        else:
            result.unmatched.append(key)
    return result
