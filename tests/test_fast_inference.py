"""The inference shortcuts give the results of the straightforward computation."""

import pytest
import torch
from torch import nn

from modeling_video_mask2former.modeling_video_mask2former import VideoMask2FormerMaskedCrossAttention

from .test_modeling_video_mask2former import VideoMask2FormerModelTester, build_model


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
    tester = VideoMask2FormerModelTester(batch_size=2, num_frames=3)
    model = build_model(tester)
    pixel_values = tester.prepare_pixel_values()
    outputs = []
    for chunk_size in (1, 6):
        model.model.pixel_level_chunk_size = chunk_size
        with torch.no_grad():
            outputs.append(model(pixel_values, output_hidden_states=True))
    chunked, one_pass = outputs
    for actual, expected in zip(chunked.encoder_hidden_states, one_pass.encoder_hidden_states):
        torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)
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
