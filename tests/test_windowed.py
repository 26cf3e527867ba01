"""Windowed inference: exactly full mode on short clips, track linking on synthetic tracks and on longer clips."""

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils
from torch import nn

from modeling_video_mask2former import VideoMask2FormerVideoProcessor
from modeling_video_mask2former.results import encode_masks
from modeling_video_mask2former.windowed import (
    iter_video_frames,
    link_tracks,
    pooled_mask_iou,
    segment_clip,
    segment_video_windowed,
)

from .test_modeling_video_mask2former import VideoMask2FormerModelTester, build_model
from .test_predict_cli import moving_box_frames, write_frame_directory, write_mp4


HEIGHT, WIDTH = 64, 96


@pytest.fixture(scope="module")
def model():
    return build_model(VideoMask2FormerModelTester(batch_size=1))


@pytest.fixture(scope="module")
def processor():
    return VideoMask2FormerVideoProcessor(size={"shortest_edge": HEIGHT, "longest_edge": 4 * WIDTH})


def full_mode(model, processor, video, top_k):
    """The reference: processor, model and post-processing on the whole video, as the original."""
    inputs = processor(videos=video, return_tensors="pt")
    with torch.no_grad():
        outputs = model(inputs["pixel_values_videos"])
    (tracks,) = processor.post_process_video_instance_segmentation(
        outputs, target_sizes=inputs["original_sizes"], resized_sizes=inputs["resized_sizes"], top_k=top_k
    )
    return tracks


@pytest.mark.parametrize("num_frames", [1, 5, 8])
def test_windowed_equals_full_mode_up_to_the_window_size(model, processor, tmp_path, num_frames):
    path = write_mp4(tmp_path / "clip.mp4", moving_box_frames(num_frames, HEIGHT, WIDTH))
    reference = full_mode(model, processor, str(path), top_k=7)
    windowed = segment_video_windowed(model, processor, iter_video_frames(path), window_size=8, overlap=3, top_k=7)
    assert [(track["score"], track["label"]) for track in windowed] == [
        (track["score"], track["label"]) for track in reference
    ]
    for windowed_track, reference_track in zip(windowed, reference):
        assert windowed_track["segmentations"] == encode_masks(reference_track["masks"])


def test_segment_clip_post_processes_in_chunks_exactly(model, processor):
    frames = moving_box_frames(5, HEIGHT, WIDTH)
    reference = full_mode(model, processor, frames, top_k=4)
    chunked = segment_clip(model, processor, list(frames), top_k=4, chunk_size=2)
    assert [track["query_index"] for track in chunked] == [track["query_index"] for track in reference]
    assert [track["segmentations"] for track in chunked] == [encode_masks(track["masks"]) for track in reference]


def test_frame_directory_and_file_stream_the_same_frames(tmp_path):
    frames = moving_box_frames(4, HEIGHT, WIDTH)
    directory = write_frame_directory(tmp_path / "frames", frames)
    np.testing.assert_array_equal(np.stack(list(iter_video_frames(directory))), frames)


def rles(masks):
    return encode_masks(np.asarray(masks, dtype=bool))


def test_pooled_mask_iou_on_known_overlaps():
    box = np.zeros((2, 10, 10), bool)
    box[:, 0:4, 0:5] = True  # 20 pixels per frame
    shifted = np.zeros((2, 10, 10), bool)
    shifted[:, 0:4, 1:6] = True  # overlaps `box` on 16 pixels per frame
    half = box.copy()
    half[1] = False  # only in the first frame
    empty = np.zeros((2, 10, 10), bool)
    iou = pooled_mask_iou([rles(box), rles(empty)], [rles(box), rles(shifted), rles(half), rles(empty)])
    np.testing.assert_allclose(iou[0], [1.0, 32 / 48, 20 / 40, 0.0])
    np.testing.assert_allclose(iou[1], [0.0, 0.0, 0.0, 0.0])  # empty vs empty: 0, never linked
    assert pooled_mask_iou([], [rles(box)]).shape == (0, 1)


def test_link_tracks_maximises_iou_within_labels():
    iou = np.array(
        [
            [0.9, 0.8, 0.0],
            [0.85, 0.1, 0.0],
            [0.0, 0.0, 0.3],
        ]
    )
    # greedy would pair 0-0 and leave 1 with 0.1; the assignment pairs 0-1 and 1-0; 2-2 is below min_iou
    assert sorted(link_tracks(iou, [0, 0, 1], [0, 0, 1], min_iou=0.5)) == [(0, 1), (1, 0)]
    # a different label forbids the pair however high the IoU
    assert sorted(link_tracks(iou, [0, 0, 1], [0, 1, 1], min_iou=0.5)) == [(0, 0)]
    assert link_tracks(np.zeros((0, 2)), [], [0, 1]) == []


def test_arguments_are_checked(model, processor):
    frames = moving_box_frames(3, HEIGHT, WIDTH)
    with pytest.raises(ValueError, match="overlap"):
        segment_video_windowed(model, processor, frames, window_size=4, overlap=4)
    with pytest.raises(ValueError, match="min_iou"):
        segment_video_windowed(model, processor, frames, window_size=4, overlap=1, min_iou=0)
    with pytest.raises(ValueError, match="no frames"):
        segment_video_windowed(model, processor, [], window_size=4, overlap=1)
    mixed = [frames[0], frames[1][:32]]
    with pytest.raises(ValueError, match="Frame 1 has shape"):
        segment_video_windowed(model, processor, mixed, window_size=4, overlap=1)


def test_longer_clip_from_a_video_file(model, processor, tmp_path):
    """14 frames in windows of 6 overlapping by 2: [0, 6), [4, 10), [8, 14). The tracks present from frame 0 are the
    first window's full-mode tracks there; every track covers the whole video."""
    frames = moving_box_frames(14, HEIGHT, WIDTH)
    path = write_mp4(tmp_path / "long.mp4", frames)
    progress = []
    tracks = segment_video_windowed(
        model, processor, iter_video_frames(path), window_size=6, overlap=2, top_k=5, on_window=progress.append
    )
    assert progress == [6, 4, 4]
    assert 5 <= len(tracks) <= 15
    assert all(len(track["segmentations"]) == 14 for track in tracks)
    assert all(track["segmentations"][0]["size"] == [HEIGHT, WIDTH] for track in tracks)
    scores = [track["score"] for track in tracks]
    assert scores == sorted(scores, reverse=True) and 0 < scores[-1] <= scores[0] < 1

    first_window = segment_clip(model, processor, list(iter_video_frames(path))[:6], top_k=5)
    found = Counter((track["label"], tuple(rle["counts"] for rle in track["segmentations"][:6])) for track in tracks)
    for track in first_window:  # each first-window track is (the start of) a final track
        key = (track["label"], tuple(rle["counts"] for rle in track["segmentations"]))
        assert found[key] > 0
        found[key] -= 1


class ColourSegmenter(nn.Module):
    """A stand-in model with known behaviour: query `c` segments the pixels whose channel `c` is bright and always
    predicts label `c` (probability 0.8 for red, 0.6 for green, near 0 for blue)."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(test_top_k=2)
        probabilities = torch.tensor([[0.8, 0.0, 0.0, 0.2], [0.0, 0.6, 0.0, 0.4], [0.0, 0.0, 1e-3, 1.0]])
        self.register_buffer("class_logits", torch.log(probabilities + 1e-9))

    @property
    def device(self) -> torch.device:
        return self.class_logits.device

    @property
    def dtype(self) -> torch.dtype:
        return self.class_logits.dtype

    def forward(self, pixel_values_videos):
        batch_size, num_frames = pixel_values_videos.shape[:2]
        logits = F.avg_pool2d(pixel_values_videos.flatten(0, 1), 4).view(batch_size, num_frames, 3, -1)
        logits = logits.view(*logits.shape[:3], pixel_values_videos.shape[-2] // 4, -1).transpose(1, 2)
        return SimpleNamespace(
            class_queries_logits=self.class_logits.expand(batch_size, -1, -1), masks_queries_logits=logits
        )


def test_linking_follows_objects_that_leave_and_come_back(processor):
    """A red box moves through all 20 frames; a green box is there in frames 0-8 and 15-19. With windows of 6 frames
    overlapping by 2 ([0, 6), [4, 10), [8, 14), [12, 18) and the last shifted back to [14, 20)), the red box is one
    track, the green box two: nothing links it across frames 12-13 where it is absent."""
    num_frames = 20
    frames = np.zeros((num_frames, HEIGHT, WIDTH, 3), np.uint8)
    red, green = np.zeros((num_frames, HEIGHT, WIDTH), bool), np.zeros((num_frames, HEIGHT, WIDTH), bool)
    for index in range(num_frames):
        red[index, 8:32, 2 * index : 2 * index + 24] = True
        if index <= 8 or index >= 15:
            green[index, 36:60, 60:88] = True
    frames[red] = (255, 0, 0)
    frames[green] = (0, 255, 0)

    progress = []
    tracks = segment_video_windowed(
        ColourSegmenter(), processor, iter(frames), window_size=6, overlap=2, on_window=progress.append
    )
    assert progress == [6, 4, 4, 4, 2]
    assert [track["label"] for track in tracks] == [0, 1, 1]
    assert [track["score"] for track in tracks] == pytest.approx([0.8, 0.6, 0.6], abs=1e-5)

    def present(track):
        return [int(mask_utils.area(rle)) > 0 for rle in track["segmentations"]]

    assert all(present(tracks[0]))
    first, second = sorted(tracks[1:], key=lambda track: present(track).index(True))
    assert present(first) == [index <= 8 for index in range(num_frames)]
    assert present(second) == [index >= 15 for index in range(num_frames)]
    for index in range(num_frames):
        decoded = mask_utils.decode(tracks[0]["segmentations"][index]).astype(bool)
        assert (decoded & red[index]).sum() / (decoded | red[index]).sum() > 0.8
