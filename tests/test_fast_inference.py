"""The inference shortcuts give the results of the straightforward computation."""

import pytest
import torch
from pycocotools import mask as mask_utils
from torch import nn

from modeling_video_mask2former import VideoMask2FormerVideoProcessor
from modeling_video_mask2former.evaluation.inference import load_model_and_processor
from modeling_video_mask2former.modeling_video_mask2former import (
    VideoMask2FormerMaskedCrossAttention,
    VideoMask2FormerSinePositionEmbedding,
)
from modeling_video_mask2former.publishing import save_model_folder
from modeling_video_mask2former.windowed import segment_clip

from .test_modeling_video_mask2former import VideoMask2FormerModelTester, build_model
from .test_predict_cli import moving_box_frames


@pytest.mark.parametrize("backbone", ["resnet", "swin"])
def test_low_resolution_attention_masks_give_the_full_resolution_results(backbone):
    """Without auxiliary logits, intermediate predictions are made at the attended level's size only."""
    tester = VideoMask2FormerModelTester(backbone=backbone, batch_size=2, num_frames=3)
    model = build_model(tester)
    pixel_values = tester.prepare_pixel_values()
    with torch.no_grad():
        fast = model(pixel_values)
        full = model(pixel_values, output_auxiliary_logits=True)
        base = model.model(pixel_values, output_intermediate_masks=False)
    torch.testing.assert_close(fast.class_queries_logits, full.class_queries_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(fast.masks_queries_logits, full.masks_queries_logits, atol=1e-5, rtol=0)
    assert len(base.masks_queries_logits) == 1
    assert base.masks_queries_logits[0].shape == full.masks_queries_logits.shape


def test_pixel_level_chunks_give_the_one_pass_results():
    """Chunks of 1 and of 4 (the last one shorter) of 6 frames, written into the preallocated outputs."""
    tester = VideoMask2FormerModelTester(batch_size=2, num_frames=3)
    model = build_model(tester)
    pixel_values = tester.prepare_pixel_values()
    outputs = {}
    for chunk_size in (1, 4, 6):
        model.model.pixel_level_chunk_size = chunk_size
        with torch.no_grad():
            outputs[chunk_size] = model(pixel_values, output_hidden_states=True)
    one_pass = outputs.pop(6)
    for chunked in outputs.values():
        for name in ("encoder_hidden_states", "pixel_decoder_hidden_states"):
            for actual, expected in zip(getattr(chunked, name), getattr(one_pass, name), strict=True):
                torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(chunked.encoder_last_hidden_state, one_pass.encoder_last_hidden_state)
        torch.testing.assert_close(chunked.pixel_decoder_last_hidden_state, one_pass.pixel_decoder_last_hidden_state)
        torch.testing.assert_close(chunked.masks_queries_logits, one_pass.masks_queries_logits, atol=1e-4, rtol=0)


def test_masked_cross_attention_matches_multihead_attention():
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(32, 4)
    attention = VideoMask2FormerMaskedCrossAttention(32, 4)
    attention.load_state_dict(reference.state_dict())
    query, memory = torch.randn(6, 2, 32), torch.randn(40, 2, 32)
    mask = torch.rand(2, 1, 6, 40) < 0.7  # one mask for all heads
    mask[..., 0] = False  # no fully masked row
    per_head = mask.expand(-1, 4, -1, -1).flatten(0, 1)
    with torch.no_grad():
        expected, _ = reference(query, memory + 1, memory, attn_mask=per_head, key_padding_mask=None)
        actual, weights = attention(query=query, key=memory + 1, value=memory, attn_mask=mask, key_padding_mask=None)
    assert weights is None
    torch.testing.assert_close(actual, expected, atol=1e-6, rtol=1e-5)


@pytest.mark.slow
def test_torch_compile_matches_eager():
    tester = VideoMask2FormerModelTester(batch_size=1, num_frames=2)
    model = build_model(tester)
    pixel_values = tester.prepare_pixel_values()
    compiled = torch.compile(model)
    with torch.no_grad():
        expected = model(pixel_values)
        actual = compiled(pixel_values)
    torch.testing.assert_close(actual.class_queries_logits, expected.class_queries_logits, atol=1e-4, rtol=0)
    torch.testing.assert_close(actual.masks_queries_logits, expected.masks_queries_logits, atol=5e-4, rtol=0)


@pytest.mark.slow
def test_compile_option_gives_the_eager_tracks(tmp_path):
    """`--compile` (load_model_and_processor(compile=True)) keeps the tracks: same queries and labels, same masks."""
    save_model_folder(build_model(VideoMask2FormerModelTester(batch_size=1)), VideoMask2FormerVideoProcessor(), tmp_path)
    frames = list(moving_box_frames(3, 64, 96))
    tracks = []
    for use_compile in (False, True):
        model, processor = load_model_and_processor(str(tmp_path), "cpu", torch.float32, compile=use_compile)
        tracks.append(segment_clip(model, processor, frames, top_k=5))
    eager, compiled = tracks
    assert [(t["query_index"], t["label"]) for t in compiled] == [(t["query_index"], t["label"]) for t in eager]
    assert [t["score"] for t in compiled] == pytest.approx([t["score"] for t in eager], abs=1e-5)
    for compiled_track, eager_track in zip(compiled, eager):
        compiled_masks = mask_utils.decode(compiled_track["segmentations"]).astype(bool)
        eager_masks = mask_utils.decode(eager_track["segmentations"]).astype(bool)
        assert (compiled_masks != eager_masks).mean() < 1e-3


def test_memories_built_in_place_give_the_copied_results():
    """At inference without hidden states the level embeddings are added into the pixel decoder's features in place."""
    tester = VideoMask2FormerModelTester(batch_size=2, num_frames=3)
    model = build_model(tester)
    pixel_values = tester.prepare_pixel_values()
    with torch.no_grad():
        in_place = model(pixel_values)
        copied = model(pixel_values, output_hidden_states=True)
        features = model.model.run_pixel_level_module(pixel_values.flatten(0, 1), False).decoder_hidden_states
    torch.testing.assert_close(in_place.class_queries_logits, copied.class_queries_logits, atol=0, rtol=0)
    torch.testing.assert_close(in_place.masks_queries_logits, copied.masks_queries_logits, atol=0, rtol=0)
    assert in_place.pixel_decoder_hidden_states is None and in_place.pixel_decoder_last_hidden_state is None
    for actual, expected in zip(copied.pixel_decoder_hidden_states, features, strict=True):
        torch.testing.assert_close(actual, expected, atol=0, rtol=0)  # returned features are the pixel decoder's own


def test_tube_positions_are_the_encoding_and_project_the_keys_frame_by_frame():
    embedder = VideoMask2FormerSinePositionEmbedding(32)
    num_frames, height, width = 5, 48, 50  # 2400 tokens per frame: one frame per slice, 5 slices
    encoding = embedder(num_frames, height, width, torch.device("cpu"), torch.float32)  # (1, frames, hidden, h, w)
    time_major = encoding[0].permute(0, 2, 3, 1).reshape(-1, 1, 32)
    tube = embedder.tube(num_frames, height, width, torch.device("cpu"), torch.float32)
    torch.testing.assert_close(tube.frames(0, num_frames), time_major, atol=0, rtol=0)
    torch.testing.assert_close(tube.frames(2, 4), time_major[2 * 2400 : 4 * 2400], atol=0, rtol=0)

    generator = torch.Generator().manual_seed(0)
    memory = torch.randn(num_frames * height * width, 2, 32, generator=generator)
    weight, bias = torch.randn(32, 32, generator=generator), torch.randn(32, generator=generator)
    expected = nn.functional.linear(memory + time_major, weight, bias)
    with torch.no_grad():
        sliced = tube.keys(memory, weight, bias)
    torch.testing.assert_close(sliced, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(tube.keys(memory, weight, bias), expected, atol=1e-5, rtol=1e-5)  # autograd path
