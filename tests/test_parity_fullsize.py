"""Parity at the real preset sizes (YTVIS-2019 R50 and Swin-T: hidden 256, 8 heads, FFN 2048, 100 queries).

The weights are regenerated in the original's key names with the reference's recipe, converted with the real preset,
and the outputs compared with the original's. Unlike the tiny models, this catches a wrong head count or FFN size.
"""

import json

import pytest
import torch
from safetensors.torch import load_file

from modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation, VideoMask2FormerVideoProcessor
from modeling_video_mask2former.conversion.convert import convert_checkpoint

from .conftest import FIXTURES
from .fullsize_recipe import regenerate_original_state_dict
from .parity_utils import assert_close_absolute, assert_close_relative_to_max


CASES = json.loads((FIXTURES / "fullsize" / "fullsize_cases.json").read_text())


def assert_matches_checksum(actual: torch.Tensor, reference: dict, name: str) -> None:
    """Compares a tensor the reference stores only as `[max|x|, sum x, sum |x|, sum x²]` plus every 97th element."""
    expected_max, expected_sum, expected_abs_sum, expected_square_sum = reference[f"{name}.checksum"].tolist()
    assert list(actual.shape) == reference[f"{name}.shape"].tolist()
    values = actual.double()
    assert values.abs().max().item() == pytest.approx(expected_max, rel=1e-4)
    assert values.abs().sum().item() == pytest.approx(expected_abs_sum, rel=1e-5)
    assert values.square().sum().item() == pytest.approx(expected_square_sum, rel=1e-5)
    assert values.sum().item() == pytest.approx(expected_sum, abs=1e-5 * expected_abs_sum)
    assert_close_relative_to_max(
        actual.flatten()[::97], reference[f"{name}.checksum_sample"], 1e-4, f"{name} (every 97th element)"
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_full_size_preset_matches_original(case, tmp_path):
    spec = CASES[case]
    checkpoint = tmp_path / "original.pth"
    torch.save({"model": regenerate_original_state_dict(spec["state_dict"])}, checkpoint)
    folder = tmp_path / "converted"
    convert_checkpoint(checkpoint, spec["preset"], folder)
    model = VideoMask2FormerForVideoInstanceSegmentation.from_pretrained(folder).eval()
    assert model.config.num_attention_heads == 8 and model.config.dim_feedforward == 2048

    reference = load_file(FIXTURES / "fullsize" / f"{case}.safetensors")
    with torch.no_grad():
        outputs = model(reference["backbone_input"][None], output_hidden_states=True, output_auxiliary_logits=True)

    for index, level in enumerate(["res2", "res3", "res4", "res5"]):
        name = f"backbone.{level}"
        if name in reference:
            assert_close_relative_to_max(outputs.encoder_hidden_states[index], reference[name], 1e-4, name)
        else:
            assert_matches_checksum(outputs.encoder_hidden_states[index], reference, name)
    assert_matches_checksum(outputs.pixel_decoder_last_hidden_state, reference, "pixel_decoder.mask_features")
    for index in range(3):
        name = f"pixel_decoder.multi_scale_features.{index}"
        assert_close_absolute(outputs.pixel_decoder_hidden_states[index], reference[name], 1e-4, name)
    for index, auxiliary in enumerate(outputs.auxiliary_logits):
        name = f"decoder.aux.{index}.pred_logits"
        assert_close_absolute(auxiliary["class_queries_logits"], reference[name], 1e-4, name)
    assert_close_absolute(outputs.class_queries_logits, reference["decoder.pred_logits"], 1e-4, "pred_logits")
    assert_close_absolute(outputs.masks_queries_logits, reference["decoder.pred_masks"], 5e-4, "pred_masks")

    (tracks,) = VideoMask2FormerVideoProcessor().post_process_video_instance_segmentation(
        outputs, target_sizes=[(96, 128)], resized_sizes=[(96, 128)]
    )
    order = reference["final.scores"].argsort(descending=True)
    assert [track["label"] for track in tracks] == reference["final.labels"][order].tolist()
    assert [track["query_index"] for track in tracks] == reference["final.query_indices"][order].tolist()
    scores = torch.tensor([track["score"] for track in tracks])
    assert_close_absolute(scores, reference["final.scores"][order], 1e-5, "scores")
    masks = torch.stack([track["masks"] for track in tracks])
    mismatches = (masks != reference["final.masks"][order].bool()).sum().item()
    assert mismatches <= spec["post"]["n_mask_pixels_abs_logit_below_1e-4"]
