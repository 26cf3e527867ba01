"""Video Mask2Former: the image Mask2Former with the paper's three changes for video instance segmentation.

Everything the paper leaves unchanged is transformers' own image Mask2Former (backbone, pixel decoder, masked-attention
decoder layers, heads), with the same module tree, so an image checkpoint loads into the video model. The three changes
of "Mask2Former for Video Instance Segmentation" (Cheng et al., 2021), each one small class below:

1. masked attention over the spatio-temporal memory: each level's features of all `T` frames are flattened time-major
   into one `(T·h·w, batch, channels)` memory ([`VideoMask2FormerTransformerModule`]), and the attention mask covers
   the whole tube (`(batch, 1, queries, T·h·w)`, [`VideoMask2FormerMaskPredictor`]);
2. a position encoding made of a temporal and a spatial sine term ([`VideoMask2FormerSinePositionEmbedding`]);
3. 3D mask prediction: one query predicts a mask for every frame, `einsum("bqc,btchw->bqthw")`
   ([`VideoMask2FormerMaskPredictor`]).

A few overrides make inference faster and lighter with the same results up to float rounding: the pixel decoder's
deformable attention as one `embedding_bag` ([`VideoMask2FormerPixelDecoderEncoderMultiscaleDeformableAttention`]), the
backbone and pixel decoder run frame by frame on CPU into outputs allocated once ([`VideoMask2FormerModel`]), the
masked attention through `scaled_dot_product_attention` with keys projected a few frames at a time from the memory and
the two terms of its position encoding ([`VideoMask2FormerMaskedCrossAttention`], [`TubePositions`]), and, unless
auxiliary logits are requested, intermediate predictions only at the attended level's resolution
([`VideoMask2FormerMaskedAttentionDecoder`]). Memory then grows with the clip by about 40 MB per 384x640 frame (R50).
"""

from dataclasses import dataclass

import torch
from torch import Tensor, nn
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerForUniversalSegmentation,
    Mask2FormerForUniversalSegmentationOutput,
    Mask2FormerMaskedAttentionDecoder,
    Mask2FormerMaskedAttentionDecoderLayer,
    Mask2FormerMaskedAttentionDecoderOutput,
    Mask2FormerMaskPredictor,
    Mask2FormerModel,
    Mask2FormerModelOutput,
    Mask2FormerPixelLevelModule,
    Mask2FormerPixelLevelModuleOutput,
    Mask2FormerPreTrainedModel,
    Mask2FormerSinePositionEmbedding,
    Mask2FormerTransformerModule,
)

from .configuration_video_mask2former import VideoMask2FormerConfig
from .deformable_attention import VideoMask2FormerPixelDecoderEncoderMultiscaleDeformableAttention
from .loss_video_mask2former import VideoMask2FormerLoss


class VideoMask2FormerSinePositionEmbedding(nn.Module):
    """
    Change 2: the spatio-temporal position encoding. The spatial term is the image model's normalised 2D sine
    encoding (`hidden/2` features each for y and x, concatenated); the temporal term uses all `hidden` features with
    its own frequency schedule `10000^(2⌊i/2⌋/hidden)` on `z = 2π·(t+1)/T`, and is ADDED to the spatial one.
    """

    def __init__(self, hidden_dim: int, temperature: int = 10000):
        super().__init__()
        self.hidden_dim = hidden_dim
        self.temperature = temperature
        self.scale = 2 * torch.pi
        self.spatial = Mask2FormerSinePositionEmbedding(num_position_features=hidden_dim // 2, normalize=True)

    def temporal(self, num_frames: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Temporal sine term of shape `(frames, hidden)`."""
        z_embed = torch.arange(1, num_frames + 1, dtype=dtype, device=device)
        z_embed = z_embed / (z_embed[-1:] + 1e-6) * self.scale
        dim_t = torch.arange(self.hidden_dim, dtype=dtype, device=device)
        dim_t = self.temperature ** (2 * (dim_t // 2) / self.hidden_dim)
        pos_z = z_embed[:, None] / dim_t
        return torch.stack((pos_z[:, 0::2].sin(), pos_z[:, 1::2].cos()), dim=2).flatten(1)

    def forward(self, num_frames: int, height: int, width: int, device: torch.device, dtype: torch.dtype) -> Tensor:
        """Position encoding of shape `(1, frames, hidden, height, width)`, shared by every clip of a batch."""
        spatial = self.spatial(torch.Size((1, self.hidden_dim, height, width)), device, dtype)
        temporal = self.temporal(num_frames, device, dtype)
        return spatial[:, None] + temporal[None, :, :, None, None]

    def tube(
        self, num_frames: int, height: int, width: int, device: torch.device, dtype: torch.dtype
    ) -> "TubePositions":
        """The same encoding, kept as its two terms (see [`TubePositions`])."""
        spatial = self.spatial(torch.Size((1, self.hidden_dim, height, width)), device, dtype)
        return TubePositions(self.temporal(num_frames, device, dtype), spatial[0].flatten(1).t())


@dataclass
class TubePositions:
    """
    The spatio-temporal position encoding of one level, laid out as the decoder's time-major memory
    `(frames·h·w, batch, hidden)` but kept as its temporal `(frames, hidden)` and spatial `(h·w, hidden)` terms: the
    sum over the whole tube is as large as the memory itself, and the masked attention forms it a few frames at a time.
    """

    temporal: Tensor
    spatial: Tensor

    def frames(self, start: int, stop: int) -> Tensor:
        """The encoding of frames `start:stop`, of shape `((stop - start)·h·w, 1, hidden)`."""
        return (self.temporal[start:stop, None] + self.spatial[None]).flatten(0, 1)[:, None]

    def keys(self, memory: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """
        `linear(memory + encoding, weight, bias)` for a memory of shape `(frames·h·w, batch, hidden)`. Without autograd
        it is computed a few frames at a time into one output, so that `memory + encoding` is never held whole.
        """
        num_frames = len(self.temporal)
        if torch.is_grad_enabled():
            return nn.functional.linear(memory + self.frames(0, num_frames), weight, bias)
        tokens_per_frame = len(self.spatial)
        frames_per_slice = max(1, 4096 // tokens_per_frame)
        keys = None
        for start in range(0, num_frames, frames_per_slice):
            stop = min(start + frames_per_slice, num_frames)
            rows = slice(start * tokens_per_frame, stop * tokens_per_frame)
            sliced = nn.functional.linear(memory[rows] + self.frames(start, stop), weight, bias)
            if keys is None:
                keys = sliced.new_empty(len(memory), *sliced.shape[1:])
            keys[rows] = sliced
        return keys


@dataclass
class MemoryWithPositions:
    """A level's memory `(frames·h·w, batch, hidden)` and its [`TubePositions`], to be summed by the attention."""

    memory: Tensor
    positions: TubePositions


class VideoMask2FormerMaskPredictor(Mask2FormerMaskPredictor):
    """
    Change 3: 3D mask prediction. Each query embedding is dotted with the per-pixel embeddings of every frame, giving
    one mask logit tube per query. The attention mask for the next layer covers the same tube, resized per frame to the
    attended level.
    """

    def forward(
        self, outputs: Tensor, pixel_embeddings: Tensor, attention_mask_target_size: tuple[int, int] | None = None
    ) -> tuple[Tensor, Tensor]:
        """
        Args:
            outputs (`torch.Tensor` of shape `(queries, batch, hidden)`): normalised decoder states.
            pixel_embeddings (`torch.Tensor` of shape `(batch, frames, channels, height, width)`): mask features, at
                stride 4, or already resized to `attention_mask_target_size` when only the attention mask is needed.
            attention_mask_target_size (`tuple[int, int]`): `(h, w)` of the level the next layer attends to.

        Returns:
            mask logits of shape `(batch, queries, frames, height, width)` (a view of frame-major logits) and the
            boolean attention mask of shape `(batch, 1, queries, frames·h·w)`, the same for every head (True = blocked,
            time-major).
        """
        mask_embeddings = self.mask_embedder(outputs.transpose(0, 1))
        batch_size, num_frames, _, height, width = pixel_embeddings.shape
        # einsum("bqc,btchw->bqthw") frame by frame, on the embeddings as they are: (batch, frames, queries, h·w)
        frame_masks = torch.matmul(mask_embeddings[:, None], pixel_embeddings.flatten(3))
        num_queries = frame_masks.shape[2]

        attention_mask = frame_masks
        if (height, width) != tuple(attention_mask_target_size):
            attention_mask = nn.functional.interpolate(
                frame_masks.view(-1, num_queries, height, width),
                size=attention_mask_target_size,
                mode="bilinear",
                align_corners=False,
            )
        attention_mask = attention_mask.view(batch_size, num_frames, num_queries, -1).sigmoid() < 0.5
        attention_mask = attention_mask.transpose(1, 2).reshape(batch_size, 1, num_queries, -1)
        return frame_masks.view(batch_size, num_frames, num_queries, height, width).transpose(1, 2), attention_mask


class VideoMask2FormerMaskedCrossAttention(nn.MultiheadAttention):
    """
    The decoder layers' masked attention (an `nn.MultiheadAttention`, same weights) as one
    `scaled_dot_product_attention` with the boolean mask broadcast over the heads, instead of a float mask repeated per
    head and a materialised `(batch·heads, queries, memory)` probability tensor. It returns no attention weights: the
    decoder layers discard them.
    """

    def forward(
        self,
        query: Tensor,
        key: "Tensor | MemoryWithPositions",
        value: Tensor,
        attn_mask: Tensor | None = None,
        key_padding_mask: None = None,
    ) -> tuple[Tensor, None]:
        """
        Args:
            query (`torch.Tensor` of shape `(queries, batch, hidden)`).
            key (`torch.Tensor` of shape `(memory, batch, hidden)` or [`MemoryWithPositions`]).
            value (`torch.Tensor` of shape `(memory, batch, hidden)`).
            attn_mask (`torch.BoolTensor` of shape `(batch, 1, queries, memory)`, *optional*): True where blocked.
        """
        if key_padding_mask is not None:
            raise ValueError("key_padding_mask is not supported; the masked attention has none")
        batch_size, head_dim = query.shape[1], self.embed_dim // self.num_heads
        weights, biases = self.in_proj_weight.chunk(3), self.in_proj_bias.chunk(3)
        if isinstance(key, MemoryWithPositions):
            key = key.positions.keys(key.memory, weights[1], biases[1])
        else:
            key = nn.functional.linear(key, weights[1], biases[1])
        query = nn.functional.linear(query, weights[0], biases[0])
        value = nn.functional.linear(value, weights[2], biases[2])
        # (length, batch, hidden) -> (batch, heads, length, head_dim)
        query, key, value = (
            states.view(len(states), batch_size, self.num_heads, head_dim).permute(1, 2, 0, 3)
            for states in (query, key, value)
        )
        output = nn.functional.scaled_dot_product_attention(
            query,
            key,
            value,
            attn_mask=None if attn_mask is None else ~attn_mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        output = output.permute(2, 0, 1, 3).flatten(2)
        return self.out_proj(output), None


class VideoMask2FormerMaskedAttentionDecoderLayer(Mask2FormerMaskedAttentionDecoderLayer):
    """
    The image model's decoder layer with [`VideoMask2FormerMaskedCrossAttention`]. Given [`TubePositions`], it hands the
    key `memory + positions` to the attention as its two parts ([`MemoryWithPositions`]).
    """

    def __init__(self, config: VideoMask2FormerConfig):
        super().__init__(config)
        self.cross_attn = VideoMask2FormerMaskedCrossAttention(
            config.hidden_dim, config.num_attention_heads, config.dropout
        )

    def with_pos_embed(self, tensor: Tensor, pos: "Tensor | TubePositions | None") -> "Tensor | MemoryWithPositions":
        if isinstance(pos, TubePositions):
            return MemoryWithPositions(tensor, pos)
        return super().with_pos_embed(tensor, pos)


class VideoMask2FormerMaskedAttentionDecoder(Mask2FormerMaskedAttentionDecoder):
    """
    The image model's masked-attention decoder with the 3D mask predictor. At inference, when the intermediate mask
    logits are not requested, every prediction but the last is made only at the resolution of the level the next layer
    attends to, from pixel embeddings resized to that level: bilinear resizing commutes with the mask predictor's
    per-pixel dot product, so the attention masks are those of the image decoder, at a fraction of the cost and memory.
    """

    def __init__(self, config: VideoMask2FormerConfig):
        super().__init__(config)
        self.mask_predictor = VideoMask2FormerMaskPredictor(
            hidden_size=config.hidden_dim,
            num_heads=config.num_attention_heads,
            mask_feature_size=config.mask_feature_size,
        )
        self.layers = nn.ModuleList(VideoMask2FormerMaskedAttentionDecoderLayer(config) for _ in self.layers)

    def forward(
        self,
        inputs_embeds: Tensor,
        multi_stage_positional_embeddings: list[TubePositions],
        pixel_embeddings: Tensor,
        encoder_hidden_states: list[Tensor],
        query_position_embeddings: Tensor,
        feature_size_list: list[tuple[int, int]],
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        output_intermediate_masks: bool = True,
    ) -> Mask2FormerMaskedAttentionDecoderOutput:
        """
        Args:
            inputs_embeds (`torch.Tensor` of shape `(queries, batch, hidden)`): the learnable query features.
            multi_stage_positional_embeddings (`list[TubePositions]`): per level, the encoding of the memory.
            pixel_embeddings (`torch.Tensor` of shape `(batch, frames, channels, height/4, width/4)`).
            encoder_hidden_states (`list[torch.Tensor]`): per level, the memory `(frames·h·w, batch, hidden)`.
            query_position_embeddings (`torch.Tensor` of shape `(queries, batch, hidden)`).
            feature_size_list (`list[tuple[int, int]]`): `(h, w)` of each level.
            output_intermediate_masks (`bool`, *optional*, defaults to `True`): keep the mask logits of every
                prediction; otherwise `masks_queries_logits` holds only the last one.
        """
        keep_all = output_intermediate_masks or self.training
        low_resolution = not keep_all

        def predict(states: Tensor, level: int, last: bool) -> tuple[Tensor, Tensor]:
            embeddings = pixel_embeddings
            if low_resolution and not last:
                # resized for each prediction rather than kept for every level: (batch, frames, channels, h, w)
                embeddings = nn.functional.interpolate(
                    pixel_embeddings.flatten(0, 1), size=feature_size_list[level], mode="bilinear", align_corners=False
                ).view(*pixel_embeddings.shape[:3], *feature_size_list[level])
            return self.mask_predictor(states, embeddings, feature_size_list[level])

        hidden_states = inputs_embeds
        all_hidden_states = () if output_hidden_states else None
        attentions = () if output_attentions else None
        intermediate = (self.layernorm(inputs_embeds),)
        predicted_mask, attention_mask = predict(intermediate[-1], 0, last=False)
        masks_queries_logits = (predicted_mask,) if keep_all else ()

        for index, decoder_layer in enumerate(self.layers):
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
            if self.training and self.layerdrop > 0.0 and torch.rand([]) < self.layerdrop:
                continue
            # a query whose mask blocks the whole memory attends to all of it instead
            attention_mask = attention_mask & ~attention_mask.all(-1, keepdim=True)
            layer_outputs = decoder_layer(
                hidden_states,
                index % self.num_feature_levels,
                None,
                multi_stage_positional_embeddings,
                query_position_embeddings,
                encoder_hidden_states,
                encoder_attention_mask=attention_mask,
                output_attentions=output_attentions,
            )
            hidden_states = layer_outputs[0]
            intermediate += (self.layernorm(hidden_states),)
            last = index == len(self.layers) - 1
            predicted_mask, attention_mask = predict(intermediate[-1], (index + 1) % self.num_feature_levels, last)
            if keep_all or last:
                masks_queries_logits += (predicted_mask,)
            if output_attentions:
                attentions += (layer_outputs[1],)

        if output_hidden_states:
            all_hidden_states += (hidden_states,)
        return Mask2FormerMaskedAttentionDecoderOutput(
            last_hidden_state=hidden_states.transpose(0, 1),
            hidden_states=all_hidden_states,
            attentions=attentions,
            intermediate_hidden_states=intermediate,
            masks_queries_logits=masks_queries_logits,
        )


class VideoMask2FormerTransformerModule(Mask2FormerTransformerModule):
    """
    Change 1: masked attention over the spatio-temporal memory. The image model's decoder layers run unchanged; only
    their memory, position encodings and mask predictor become spatio-temporal.
    """

    def __init__(self, in_features: int, config: VideoMask2FormerConfig):
        super().__init__(in_features=in_features, config=config)
        self.position_embedder = VideoMask2FormerSinePositionEmbedding(config.hidden_dim)
        self.decoder = VideoMask2FormerMaskedAttentionDecoder(config)

    def forward(
        self,
        multi_scale_features: list[Tensor],
        mask_features: Tensor,
        num_frames: int,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        output_intermediate_masks: bool = True,
        overwrite_features: bool = False,
    ) -> Mask2FormerMaskedAttentionDecoderOutput:
        """
        Args:
            multi_scale_features (`list[torch.Tensor]`): per level (stride 32, 16, 8) features of shape
                `(batch·frames, channels, h, w)`.
            mask_features (`torch.Tensor` of shape `(batch·frames, channels, height/4, width/4)`): per-pixel embeddings.
            num_frames (`int`): frames per clip.
            output_intermediate_masks (`bool`, *optional*, defaults to `True`): keep the mask logits of every
                prediction, not only the last (see [`VideoMask2FormerMaskedAttentionDecoder`]).
            overwrite_features (`bool`, *optional*, defaults to `False`): add the level embeddings into
                `multi_scale_features` in place, so that the memories share their storage instead of copying them (at
                inference, when the caller does not need the features afterwards).
        """
        memories, positions, size_list = [], [], []
        for level, features in enumerate(multi_scale_features):
            clips, channels, height, width = features.shape
            batch_size = clips // num_frames
            size_list.append((height, width))
            projected = self.input_projections[level](features)
            level_embedding = self.level_embed.weight[level][:, None, None]
            memory = projected.add_(level_embedding) if overwrite_features else projected + level_embedding
            # (batch·frames, channels, h, w) -> (frames·h·w, batch, channels), time-major: a view of channels-last
            # features, a copy otherwise
            memory = memory.view(batch_size, num_frames, channels, height * width).permute(1, 3, 0, 2).flatten(0, 1)
            memories.append(memory)
            positions.append(self.position_embedder.tube(num_frames, height, width, features.device, features.dtype))

        query_embeddings = self.queries_embedder.weight.unsqueeze(1).repeat(1, batch_size, 1)
        query_features = self.queries_features.weight.unsqueeze(1).repeat(1, batch_size, 1)
        pixel_embeddings = mask_features.view(batch_size, num_frames, *mask_features.shape[1:])

        return self.decoder(
            inputs_embeds=query_features,
            multi_stage_positional_embeddings=positions,
            pixel_embeddings=pixel_embeddings,
            encoder_hidden_states=memories,
            query_position_embeddings=query_embeddings,
            feature_size_list=size_list,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            output_intermediate_masks=output_intermediate_masks,
        )


@dataclass
class VideoMask2FormerModelOutput(Mask2FormerModelOutput):
    r"""
    Outputs of [`VideoMask2FormerModel`]: the fields of [`~transformers.Mask2FormerModelOutput`], with backbone and pixel
    decoder states per frame `(batch·frames, channels, height, width)` and `masks_queries_logits` one tensor per
    prediction of shape `(batch, queries, frames, height/4, width/4)` (only the last one with
    `output_intermediate_masks=False`). The per-frame states, `encoder_last_hidden_state` and
    `pixel_decoder_last_hidden_state` included, are returned only with `output_hidden_states=True`: they grow with the
    clip (18 MB per 384x640 frame for the R50 model) and are not needed to post-process.
    """


@dataclass
class VideoMask2FormerForVideoInstanceSegmentationOutput(Mask2FormerForUniversalSegmentationOutput):
    r"""
    Outputs of [`VideoMask2FormerForVideoInstanceSegmentation`], to pass to the video processor's
    `post_process_video_instance_segmentation`.

    loss (`torch.Tensor`, *optional*):
        The weighted training loss, returned when `mask_labels` and `class_labels` are given.
    class_queries_logits (`torch.Tensor` of shape `(batch, queries, num_labels + 1)`):
        Class logits of each query; the last class is "no object".
    masks_queries_logits (`torch.Tensor` of shape `(batch, queries, frames, height/4, width/4)`):
        Mask logits of each query for every frame, at stride 4 of the padded input.
    auxiliary_logits (`list[dict[str, torch.Tensor]]`, *optional*):
        The intermediate predictions, first from the learnable queries before any decoder layer, then after each
        layer but the last; each a dict with `class_queries_logits` and `masks_queries_logits`.
    """


class VideoMask2FormerPreTrainedModel(Mask2FormerPreTrainedModel):
    config: VideoMask2FormerConfig
    config_class = VideoMask2FormerConfig
    main_input_name = "pixel_values_videos"
    input_modalities = ("video",)

    def train(self, mode: bool = True):
        """Switch to training mode; the backbone's batch norms stay frozen, as the original's `FrozenBN`."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eval()
        return self


def _empty_for_frames(tensor: Tensor, num_frames: int) -> Tensor:
    """
    An uninitialised tensor like `tensor` (a chunk of frames) with `num_frames` frames; feature maps are channels-last,
    the layout the decoder's memories view without copying and that bilinear resizing is fastest on.
    """
    return torch.empty(
        (num_frames, *tensor.shape[1:]),
        dtype=tensor.dtype,
        device=tensor.device,
        memory_format=torch.channels_last if tensor.ndim == 4 else torch.contiguous_format,
    )


def _freeze_batch_norms(module: nn.Module) -> None:
    """Make every batch norm of `module` a constant affine map (detectron2's `FrozenBN`)."""
    for submodule in module.modules():
        if isinstance(submodule, nn.BatchNorm2d):
            submodule.eval()
            for parameter in submodule.parameters():
                parameter.requires_grad_(False)


class VideoMask2FormerModel(VideoMask2FormerPreTrainedModel, Mask2FormerModel):
    """
    The backbone, pixel decoder and spatio-temporal transformer decoder, without the class head.

    Frames are independent until the transformer decoder, so the backbone and pixel decoder run on
    `pixel_level_chunk_size` frames at a time (by default 1 on CPU, where one frame's activations stay in cache and are
    reused by the next frame, and all frames on accelerators); memory then grows with the clip only by their outputs.
    """

    pixel_level_chunk_size: int | None = None

    def __init__(self, config: VideoMask2FormerConfig):
        # The image model's constructor is skipped: it would build the image transformer module only to replace it.
        Mask2FormerPreTrainedModel.__init__(self, config)
        self.pixel_level_module = Mask2FormerPixelLevelModule(config)
        for layer in self.pixel_level_module.decoder.encoder.layers:
            attention = layer.self_attn
            layer.self_attn = VideoMask2FormerPixelDecoderEncoderMultiscaleDeformableAttention(
                attention.d_model, attention.n_heads, attention.n_levels, attention.n_points
            )
        self.transformer_module = VideoMask2FormerTransformerModule(in_features=config.feature_size, config=config)
        _freeze_batch_norms(self.pixel_level_module.encoder)
        self.post_init()

    def run_pixel_level_module(self, frames: Tensor, output_hidden_states: bool) -> Mask2FormerPixelLevelModuleOutput:
        """
        The backbone and pixel decoder on `(frames, 3, height, width)`, `pixel_level_chunk_size` frames at a time, each
        chunk's outputs written into tensors allocated once for all frames (no concatenation keeping two copies).
        """
        on_cpu = frames.device.type == "cpu"
        chunk_size = self.pixel_level_chunk_size or (1 if on_cpu else len(frames))
        buffers = None  # per output field, its tensors for all frames
        for start in range(0, len(frames), chunk_size):
            chunk = frames[start : start + chunk_size]
            if on_cpu:
                chunk = chunk.contiguous(memory_format=torch.channels_last)  # faster oneDNN convolutions
            chunk_outputs = self.pixel_level_module(chunk, output_hidden_states)
            if len(chunk) == len(frames):
                return chunk_outputs
            fields = {name: value if isinstance(value, tuple) else (value,) for name, value in chunk_outputs.items()}
            if buffers is None:
                buffers = {
                    name: [_empty_for_frames(t, len(frames)) for t in tensors] for name, tensors in fields.items()
                }
            for name, tensors in fields.items():
                for buffer, tensor in zip(buffers[name], tensors, strict=True):
                    buffer[start : start + len(chunk)] = tensor
        return Mask2FormerPixelLevelModuleOutput(
            **{
                name: tuple(tensors) if isinstance(chunk_outputs[name], tuple) else tensors[0]
                for name, tensors in buffers.items()
            }
        )

    def forward(
        self,
        pixel_values_videos: Tensor,
        pixel_mask: Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        output_intermediate_masks: bool = True,
        **kwargs,
    ) -> VideoMask2FormerModelOutput:
        r"""
        pixel_values_videos (`torch.Tensor` of shape `(batch, frames, 3, height, width)`):
            Normalised frames, zero-padded to a multiple of 32 (see the video processor). All frames of a video form
            one clip.
        pixel_mask (`torch.Tensor` of shape `(batch, frames, height, width)`, *optional*):
            Accepted for API compatibility and unused: the original model ignores padding as well.
        output_intermediate_masks (`bool`, *optional*, defaults to `True`):
            Return the mask logits of every prediction; when False (and in eval mode), `masks_queries_logits` holds
            only the last one and the intermediate predictions are made at the attended levels' resolution.
        """
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if pixel_values_videos.ndim != 5 or pixel_values_videos.shape[2] != 3:
            raise ValueError(
                "pixel_values_videos must have shape (batch, frames, 3, height, width), got "
                f"{tuple(pixel_values_videos.shape)}"
            )
        if not pixel_values_videos.is_floating_point():
            raise ValueError(f"pixel_values_videos must be a float tensor, got {pixel_values_videos.dtype}")
        num_frames = pixel_values_videos.shape[1]

        pixel_level_module_output = self.run_pixel_level_module(pixel_values_videos.flatten(0, 1), output_hidden_states)
        transformer_module_output = self.transformer_module(
            multi_scale_features=pixel_level_module_output.decoder_hidden_states,
            mask_features=pixel_level_module_output.decoder_last_hidden_state,
            num_frames=num_frames,
            output_hidden_states=True,
            output_attentions=output_attentions,
            output_intermediate_masks=output_intermediate_masks,
            overwrite_features=not output_hidden_states and not torch.is_grad_enabled(),
        )

        output = VideoMask2FormerModelOutput(
            encoder_last_hidden_state=(
                pixel_level_module_output.encoder_last_hidden_state if output_hidden_states else None
            ),
            pixel_decoder_last_hidden_state=(
                pixel_level_module_output.decoder_last_hidden_state if output_hidden_states else None
            ),
            transformer_decoder_last_hidden_state=transformer_module_output.last_hidden_state,
            encoder_hidden_states=pixel_level_module_output.encoder_hidden_states if output_hidden_states else None,
            pixel_decoder_hidden_states=(
                pixel_level_module_output.decoder_hidden_states if output_hidden_states else None
            ),
            transformer_decoder_hidden_states=transformer_module_output.hidden_states if output_hidden_states else None,
            transformer_decoder_intermediate_states=transformer_module_output.intermediate_hidden_states,
            attentions=transformer_module_output.attentions,
            masks_queries_logits=transformer_module_output.masks_queries_logits,
        )
        return output if return_dict else output.to_tuple()


class VideoMask2FormerForVideoInstanceSegmentation(
    VideoMask2FormerPreTrainedModel, Mask2FormerForUniversalSegmentation
):
    """Video Mask2Former with the class head and the video set-prediction loss."""

    def __init__(self, config: VideoMask2FormerConfig):
        # The image model's constructor is skipped: it would build the image model and loss only to replace them.
        Mask2FormerPreTrainedModel.__init__(self, config)
        self.model = VideoMask2FormerModel(config)
        self.weight_dict: dict[str, float] = {
            "loss_cross_entropy": config.class_weight,
            "loss_mask": config.mask_weight,
            "loss_dice": config.dice_weight,
        }
        self.class_predictor = nn.Linear(config.hidden_dim, config.num_labels + 1)
        self.criterion = VideoMask2FormerLoss(config=config, weight_dict=self.weight_dict)
        self.post_init()

    def forward(
        self,
        pixel_values_videos: Tensor,
        mask_labels: list[Tensor] | None = None,
        class_labels: list[Tensor] | None = None,
        pixel_mask: Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_auxiliary_logits: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> VideoMask2FormerForVideoInstanceSegmentationOutput:
        r"""
        pixel_values_videos (`torch.Tensor` of shape `(batch, frames, 3, height, width)`):
            Normalised frames, zero-padded to a multiple of 32.
        mask_labels (`list[torch.Tensor]`, *optional*):
            Per video, the target tracks' masks of shape `(tracks, frames, height, width)` (0/1).
        class_labels (`list[torch.LongTensor]`, *optional*):
            Per video, the target tracks' classes of shape `(tracks,)`.
        pixel_mask (`torch.Tensor`, *optional*):
            Accepted and unused, as in the original.
        output_auxiliary_logits (`bool`, *optional*):
            Return the intermediate predictions. Defaults to `config.output_auxiliary_logits`, and when that is unset
            to True in training and False at inference (each one costs as much memory as the final mask logits).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if output_auxiliary_logits is None:
            output_auxiliary_logits = self.config.output_auxiliary_logits
        if output_auxiliary_logits is None:
            output_auxiliary_logits = self.training
        compute_loss = mask_labels is not None and class_labels is not None
        output_intermediate_masks = output_auxiliary_logits or (compute_loss and self.config.use_auxiliary_loss)
        outputs = self.model(
            pixel_values_videos=pixel_values_videos,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            output_intermediate_masks=output_intermediate_masks,
        )

        class_queries_logits = tuple(
            self.class_predictor(states.transpose(0, 1)) for states in outputs.transformer_decoder_intermediate_states
        )
        masks_queries_logits = outputs.masks_queries_logits
        auxiliary_logits = (
            self.get_auxiliary_logits(class_queries_logits, masks_queries_logits) if output_intermediate_masks else None
        )

        loss = None
        if compute_loss:
            loss_dict = self.get_loss_dict(
                masks_queries_logits=masks_queries_logits[-1],
                class_queries_logits=class_queries_logits[-1],
                mask_labels=mask_labels,
                class_labels=class_labels,
                auxiliary_predictions=auxiliary_logits if self.config.use_auxiliary_loss else None,
            )
            loss = self.get_loss(loss_dict)

        output = VideoMask2FormerForVideoInstanceSegmentationOutput(
            loss=loss,
            class_queries_logits=class_queries_logits[-1],
            masks_queries_logits=masks_queries_logits[-1],
            auxiliary_logits=auxiliary_logits if output_auxiliary_logits else None,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            pixel_decoder_last_hidden_state=outputs.pixel_decoder_last_hidden_state,
            transformer_decoder_last_hidden_state=outputs.transformer_decoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            pixel_decoder_hidden_states=outputs.pixel_decoder_hidden_states,
            transformer_decoder_hidden_states=outputs.transformer_decoder_hidden_states,
            attentions=outputs.attentions,
        )
        return output if return_dict else output.to_tuple()


__all__ = [
    "VideoMask2FormerForVideoInstanceSegmentation",
    "VideoMask2FormerForVideoInstanceSegmentationOutput",
    "VideoMask2FormerModel",
    "VideoMask2FormerModelOutput",
    "VideoMask2FormerPreTrainedModel",
]
