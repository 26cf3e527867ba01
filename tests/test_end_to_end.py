"""Raw odd-size frames -> video processor -> converted tiny model -> tracks, against the original's final output."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation, VideoMask2FormerVideoProcessor
from modeling_video_mask2former.conversion.convert import convert_checkpoint

from .conftest import FIXTURES


CASES = {"tiny_r50_e2e_t2_125x118": "tiny_r50.pkl", "tiny_swin_e2e_t2_97x101": "tiny_swin.pth"}
TENSORS = load_file(FIXTURES / "e2e" / "processor_cases.safetensors")
MANIFEST = json.loads((FIXTURES / "e2e" / "processor_cases.json").read_text())


@pytest.mark.parametrize("case", sorted(CASES))
def test_raw_frames_to_tracks_match_original(case, tmp_path):
    model_name = case.split("_e2e")[0]
    convert_checkpoint(
        FIXTURES / "tiny" / CASES[case], FIXTURES / "tiny" / f"{model_name}_config.yaml", tmp_path / "model"
    )
    model = VideoMask2FormerForVideoInstanceSegmentation.from_pretrained(tmp_path / "model").eval()
    # both reference cases ran the original mapper at MIN_SIZE_TEST 360 (the Swin yaml says 480)
    processor = VideoMask2FormerVideoProcessor(size={"shortest_edge": 360, "longest_edge": 1333})

    frames = TENSORS[f"{case}.input_frames_uint8_thwc"].numpy()
    inputs = processor([list(frames)], return_tensors="pt")
    with torch.no_grad():
        outputs = model(inputs["pixel_values_videos"])
    torch.testing.assert_close(
        outputs.class_queries_logits, TENSORS[f"{case}.decoder.pred_logits"], atol=1e-4, rtol=0
    )
    torch.testing.assert_close(
        outputs.masks_queries_logits, TENSORS[f"{case}.decoder.pred_masks"], atol=5e-4, rtol=0
    )

    (tracks,) = processor.post_process_video_instance_segmentation(
        outputs, target_sizes=inputs["original_sizes"], resized_sizes=inputs["resized_sizes"]
    )
    height, width = frames.shape[1:3]
    tag = f"{case}.final_{height}x{width}"
    post = MANIFEST[case]["post"][f"final_{height}x{width}"]
    order = TENSORS[f"{tag}.scores"].argsort(descending=True)
    assert [track["label"] for track in tracks] == TENSORS[f"{tag}.labels"][order].tolist()
    assert [track["query_index"] for track in tracks] == TENSORS[f"{tag}.query_indices"][order].tolist()
    scores = torch.tensor([track["score"] for track in tracks])
    torch.testing.assert_close(scores, TENSORS[f"{tag}.scores"][order], atol=1e-5, rtol=0)

    shape = post["masks_shape"]
    bits = np.unpackbits(TENSORS[f"{tag}.masks_packbits"].numpy(), count=int(np.prod(shape)))
    expected = torch.from_numpy(bits.reshape(shape).astype(bool))[order]
    masks = torch.stack([track["masks"] for track in tracks])
    assert masks.shape == expected.shape
    assert (masks != expected).sum().item() <= post["n_mask_pixels_abs_logit_below_1e-4"]
