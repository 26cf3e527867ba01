"""Post-processing against the original's `inference_video` on stored decoder outputs, and YouTube-VIS records."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils
from safetensors.torch import load_file

from modeling_video_mask2former.results import encode_masks, tracks_to_ytvis_results
from modeling_video_mask2former.video_processing_video_mask2former import VideoMask2FormerVideoProcessor


FIXTURES = Path(__file__).parent / "fixtures"


def load_cases(folder, name):
    """The fixture's tensors and one test parameter set (case, tag, resized size, post info, tensors) per output."""
    tensors = load_file(FIXTURES / folder / f"{name}.safetensors")
    cases = json.loads((FIXTURES / folder / f"{name}.json").read_text())
    del cases["_about"]
    params = [
        pytest.param(case, tag, post.get("image_size_unpadded", info.get("resized_hw")), post, tensors, id=f"{case}-{tag}")
        for case, info in cases.items()
        for tag, post in info["post"].items()
    ]
    return tensors, params


TINY_TENSORS, TINY = load_cases("tiny", "post_processing_cases")
_, E2E = load_cases("e2e", "processor_cases")


def outputs_of(tensors, case):
    return SimpleNamespace(
        class_queries_logits=tensors[f"{case}.decoder.pred_logits"],
        masks_queries_logits=tensors[f"{case}.decoder.pred_masks"],
    )


def reference_masks(tensors, name, shape):
    bits = np.unpackbits(tensors[f"{name}.masks_packbits"].numpy(), count=int(np.prod(shape)))
    return torch.from_numpy(bits.reshape(shape).astype(bool))


@pytest.mark.parametrize("case, tag, resized, post, tensors", TINY + E2E)
def test_matches_original(case, tag, resized, post, tensors):
    output_size = post["output_size"]
    (tracks,) = VideoMask2FormerVideoProcessor().post_process_video_instance_segmentation(
        outputs_of(tensors, case), target_sizes=[output_size], resized_sizes=[resized]
    )
    order = tensors[f"{case}.{tag}.scores"].argsort(descending=True)
    scores = torch.tensor([track["score"] for track in tracks])
    assert scores.tolist() == sorted(scores.tolist(), reverse=True)
    torch.testing.assert_close(scores, tensors[f"{case}.{tag}.scores"][order], rtol=0, atol=1e-5)
    assert [track["label"] for track in tracks] == tensors[f"{case}.{tag}.labels"][order].tolist()
    assert [track["query_index"] for track in tracks] == tensors[f"{case}.{tag}.query_indices"][order].tolist()

    masks = torch.stack([track["masks"] for track in tracks])
    expected = reference_masks(tensors, f"{case}.{tag}", post["masks_shape"])[order]
    assert masks.dtype == torch.bool and masks.shape == expected.shape
    mismatches = (masks != expected).sum().item()
    print(f"{case} {tag}: {mismatches} mismatched mask pixels (allowed {post['n_mask_pixels_abs_logit_below_1e-4']})")
    assert mismatches <= post["n_mask_pixels_abs_logit_below_1e-4"]


def test_one_query_under_two_labels():
    outputs = outputs_of(TINY_TENSORS, "tiny_r50_t3_96x128")
    (tracks,) = VideoMask2FormerVideoProcessor().post_process_video_instance_segmentation(outputs)
    labels_of_query_4 = {track["label"] for track in tracks if track["query_index"] == 4}
    assert labels_of_query_4 == {26, 10}
    assert [len(tracks), *tracks[0]["masks"].shape] == [10, 3, 96, 128]


def test_batch_and_defaults():
    """A batch gives each video's own result; target size defaults to the resized size, which defaults to padded."""
    outputs = [outputs_of(TINY_TENSORS, name) for name in ("tiny_r50_t2_100x130", "tiny_swin_t2_100x130")]
    batch = SimpleNamespace(
        class_queries_logits=torch.cat([output.class_queries_logits for output in outputs]),
        masks_queries_logits=torch.cat([output.masks_queries_logits for output in outputs]),
    )
    processor = VideoMask2FormerVideoProcessor()
    results = processor.post_process_video_instance_segmentation(
        batch, target_sizes=torch.tensor([[150, 195], [100, 130]]), resized_sizes=torch.tensor([[100, 130]] * 2), top_k=3
    )
    for tracks, output, target in zip(results, outputs, [[150, 195], [100, 130]]):
        (alone,) = processor.post_process_video_instance_segmentation(
            output, target_sizes=[target], resized_sizes=[(100, 130)], top_k=3
        )
        assert len(tracks) == 3
        for track, expected in zip(tracks, alone):
            assert track.keys() == expected.keys()
            assert torch.equal(track["masks"], expected["masks"])
            assert (track["score"], track["label"], track["query_index"]) == (
                expected["score"],
                expected["label"],
                expected["query_index"],
            )
    (resized,) = processor.post_process_video_instance_segmentation(outputs[0], resized_sizes=[(100, 130)])
    (padded,) = processor.post_process_video_instance_segmentation(outputs[0])
    assert resized[0]["masks"].shape == (2, 100, 130) and padded[0]["masks"].shape == (2, 128, 160)


def test_ytvis_records():
    masks = torch.zeros((3, 5, 7), dtype=torch.bool)
    masks[0, 1:3, 2:6] = True
    masks[2, 4, :] = True  # frame 1 stays empty
    tracks = [
        {"score": 0.75, "label": 0, "query_index": 3, "masks": masks},
        {"score": 0.5, "label": 39, "query_index": 3, "masks": masks},
    ]
    records = tracks_to_ytvis_results(tracks, video_id=7)
    assert [(r["video_id"], r["score"], r["category_id"]) for r in records] == [(7, 0.75, 1), (7, 0.5, 40)]
    for record in records:
        assert record.keys() == {"video_id", "score", "category_id", "segmentations"}
        assert len(record["segmentations"]) == 3
        for rle, mask in zip(record["segmentations"], masks):
            assert rle["size"] == [5, 7] and isinstance(rle["counts"], str)
            assert np.array_equal(mask_utils.decode(rle), mask.numpy().astype(np.uint8))
            # the original encodes frame by frame
            original = mask_utils.encode(np.array(mask.numpy()[:, :, None], order="F", dtype="uint8"))[0]
            assert rle["counts"] == original["counts"].decode("utf-8")
    assert mask_utils.area(records[0]["segmentations"][1]) == 0

    mapped = tracks_to_ytvis_results(tracks, video_id=7, label_to_category_id={0: 12, 39: 3})
    assert [record["category_id"] for record in mapped] == [12, 3]
    assert encode_masks(masks.numpy()) == records[0]["segmentations"]
    assert json.loads(json.dumps(records)) == records
