"""Parity with the original implementation on the tiny reference models, from the ORIGINAL checkpoint files.

tiny_r50 is converted from its detectron2 `.pkl`, tiny_swin from its `.pth`; both go through our converter and
`from_pretrained`, then every stage is compared with the original's activations at the reference's tolerances:
backbone and pixel decoder within 1e-4 of each tensor's max, position encodings within 1e-5, class logits within
1e-4 and mask logits within 5e-4 (absolute).
"""

import pytest
import torch
from safetensors.torch import load_file

from modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation
from modeling_video_mask2former.conversion.convert import convert_checkpoint

from .conftest import FIXTURES
from .parity_utils import assert_close_absolute, assert_close_relative_to_max


MODELS = {"tiny_r50": "tiny_r50.pkl", "tiny_swin": "tiny_swin.pth"}
CASES = ["t3_96x128", "t2_100x130"]
NUM_DECODER_LAYERS = 9


@pytest.fixture(scope="module", params=list(MODELS))
def converted(request, tmp_path_factory):
    name = request.param
    folder = tmp_path_factory.mktemp(name)
    convert_checkpoint(FIXTURES / "tiny" / MODELS[name], FIXTURES / "tiny" / f"{name}_config.yaml", folder)
    model = VideoMask2FormerForVideoInstanceSegmentation.from_pretrained(folder).eval()
    return name, model


@pytest.fixture(scope="module")
def run_case(converted):
    name, model = converted
    results = {}

    def run(case):
        if case not in results:
            reference = load_file(FIXTURES / "tiny" / f"{name}_{case}.safetensors")
            with torch.no_grad():
                outputs = model(
                    reference["backbone_input"][None], output_hidden_states=True, output_auxiliary_logits=True
                )
            results[case] = (model, reference, outputs)
        return results[case]

    return run


@pytest.mark.parametrize("case", CASES)
def test_backbone_and_pixel_decoder(run_case, case):
    _, reference, outputs = run_case(case)
    for index, level in enumerate(["res2", "res3", "res4", "res5"]):
        assert_close_relative_to_max(
            outputs.encoder_hidden_states[index], reference[f"backbone.{level}"], 1e-4, f"backbone.{level}"
        )
    assert_close_relative_to_max(
        outputs.pixel_decoder_last_hidden_state, reference["pixel_decoder.mask_features"], 1e-4, "mask_features"
    )
    for index in range(3):
        assert_close_relative_to_max(
            outputs.pixel_decoder_hidden_states[index],
            reference[f"pixel_decoder.multi_scale_features.{index}"],
            1e-4,
            f"multi_scale_features.{index}",
        )


@pytest.mark.parametrize("case", CASES)
def test_position_encodings(run_case, case):
    model, reference, _ = run_case(case)
    embedder = model.model.transformer_module.position_embedder
    for level in range(3):
        expected = reference[f"decoder.pos_embed.{level}"]
        num_frames, _, height, width = expected.shape[1:]
        actual = embedder(num_frames, height, width, torch.device("cpu"), torch.float32)
        assert_close_absolute(actual, expected, 1e-5, f"pos_embed.{level}")


@pytest.mark.parametrize("case", CASES)
def test_decoder_layers_and_predictions(run_case, case):
    _, reference, outputs = run_case(case)
    for layer in range(NUM_DECODER_LAYERS):
        assert_close_relative_to_max(
            outputs.transformer_decoder_hidden_states[layer + 1],
            reference[f"decoder.layer_output.{layer}"],
            1e-4,
            f"layer_output.{layer}",
        )
    assert len(outputs.auxiliary_logits) == NUM_DECODER_LAYERS
    for index, auxiliary in enumerate(outputs.auxiliary_logits):
        assert_close_absolute(
            auxiliary["class_queries_logits"], reference[f"decoder.aux.{index}.pred_logits"], 1e-4, f"aux.{index}"
        )
        if f"decoder.aux.{index}.pred_masks" in reference:
            assert_close_absolute(
                auxiliary["masks_queries_logits"], reference[f"decoder.aux.{index}.pred_masks"], 5e-4, f"aux.{index}"
            )
    assert_close_absolute(outputs.class_queries_logits, reference["decoder.pred_logits"], 1e-4, "pred_logits")
    assert_close_absolute(outputs.masks_queries_logits, reference["decoder.pred_masks"], 5e-4, "pred_masks")
