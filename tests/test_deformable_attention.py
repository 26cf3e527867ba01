"""The `embedding_bag` deformable attention against transformers' `grid_sample` implementation on random inputs."""

import pytest
import torch
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention,
)
from transformers.models.mask2former.modeling_mask2former import (
    multi_scale_deformable_attention as reference_attention,
)

from modeling_video_mask2former.deformable_attention import (
    VideoMask2FormerPixelDecoderEncoderMultiscaleDeformableAttention,
    multi_scale_deformable_attention,
)


SHAPES = [(5, 7), (10, 14), (20, 28)]


def random_inputs(dtype=torch.float32, batch_size=2, num_queries=9, num_heads=4, head_dim=8, num_points=3, seed=0):
    """Sampling locations spread over [-0.2, 1.2] so that some fall outside the levels (zero padding)."""
    generator = torch.Generator().manual_seed(seed)
    sequence_length = sum(height * width for height, width in SHAPES)
    value = torch.randn(batch_size, sequence_length, num_heads, head_dim, generator=generator, dtype=dtype)
    locations = torch.rand(batch_size, num_queries, num_heads, len(SHAPES), num_points, 2, generator=generator)
    attention = torch.rand(batch_size, num_queries, num_heads, len(SHAPES), num_points, generator=generator)
    return value, (1.4 * locations - 0.2).to(dtype), attention.to(dtype).softmax(-1)


@pytest.mark.parametrize("seed", range(3))
def test_matches_grid_sample_implementation(seed):
    value, locations, attention = random_inputs(seed=seed)
    expected = reference_attention(value, SHAPES, locations, attention)
    actual = multi_scale_deformable_attention(value, SHAPES, locations, attention)
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=0)


def test_matches_in_float64_and_on_the_pixel_grid():
    """In float64 only rounding differs; locations on pixel centres and borders included."""
    value, locations, attention = random_inputs(torch.float64)
    height, width = SHAPES[0]
    locations[:, :, :, 0, 0] = torch.tensor([0.5 / width, 0.5 / height], dtype=torch.float64)  # a pixel centre
    locations[:, :, :, 0, 1] = torch.tensor([0.0, 1.0], dtype=torch.float64)  # on the border
    expected = reference_attention(value, SHAPES, locations, attention)
    actual = multi_scale_deformable_attention(value, SHAPES, locations, attention)
    torch.testing.assert_close(actual, expected, atol=1e-12, rtol=0)


def test_gradients_match():
    inputs = random_inputs(torch.float64)
    grad_output = torch.randn(2, 9, 32, dtype=torch.float64)
    gradients = []
    for function in (reference_attention, multi_scale_deformable_attention):
        leaves = [tensor.clone().requires_grad_() for tensor in inputs]
        (function(leaves[0], SHAPES, *leaves[1:]) * grad_output).sum().backward()
        gradients.append([leaf.grad for leaf in leaves])
    for expected, actual in zip(*gradients):
        torch.testing.assert_close(actual, expected, atol=1e-10, rtol=0)


def test_module_matches_the_image_module_with_the_same_weights():
    torch.manual_seed(0)
    reference = Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention(32, 4, n_levels=3, n_points=3)
    for parameter in reference.parameters():  # the init's zero sampling offsets would hide location errors
        torch.nn.init.normal_(parameter, std=0.1)
    module = VideoMask2FormerPixelDecoderEncoderMultiscaleDeformableAttention(32, 4, n_levels=3, n_points=3)
    module.load_state_dict(reference.state_dict())

    sequence_length = sum(height * width for height, width in SHAPES)
    hidden_states = torch.randn(2, sequence_length, 32)
    reference_points = torch.rand(2, sequence_length, 3, 2)
    padding = torch.zeros(2, sequence_length, dtype=torch.bool)
    padding[1, -20:] = True
    kwargs = {
        "attention_mask": padding,
        "encoder_hidden_states": hidden_states,
        "position_embeddings": torch.randn(2, sequence_length, 32),
        "reference_points": reference_points,
        "spatial_shapes_list": SHAPES,
    }
    with torch.no_grad():
        expected_output, expected_weights = reference(hidden_states, **kwargs)
        output, weights = module(hidden_states, **kwargs)
    torch.testing.assert_close(output, expected_output, atol=1e-5, rtol=0)
    torch.testing.assert_close(weights, expected_weights, atol=0, rtol=0)


def test_half_precision_value_under_autocast_is_promoted():
    value, locations, attention = random_inputs()
    output = multi_scale_deformable_attention(value.bfloat16(), SHAPES, locations, attention)
    assert output.dtype == torch.float32
    expected = reference_attention(value.bfloat16().float(), SHAPES, locations, attention)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=0)
