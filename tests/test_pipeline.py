"""The `video-instance-segmentation` pipeline: in-process, from a saved folder, and as Hub custom code."""

import json

import pytest
import torch
from PIL import Image
from transformers import pipeline

from modeling_video_mask2former import VideoMask2FormerVideoProcessor
from modeling_video_mask2former.pipeline_video_mask2former import (
    TASK,
    VideoInstanceSegmentationPipeline,
    register_video_instance_segmentation_pipeline,
)
from modeling_video_mask2former.publishing import save_model_folder

from .conftest import run_as_hub_user
from .test_modeling_video_mask2former import VideoMask2FormerModelTester, build_model
from .test_predict_cli import moving_box_frames, write_frame_directory, write_mp4


HEIGHT, WIDTH = 64, 96


@pytest.fixture(scope="module")
def model():
    return build_model(VideoMask2FormerModelTester(batch_size=1))


@pytest.fixture(scope="module")
def processor():
    return VideoMask2FormerVideoProcessor(size={"shortest_edge": HEIGHT, "longest_edge": 4 * WIDTH})


@pytest.fixture(scope="module")
def folder(model, processor, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    save_model_folder(model, processor, folder)
    return folder


def reference_tracks(model, processor, video, top_k=10):
    inputs = processor(videos=video, return_tensors="pt")
    with torch.no_grad():
        outputs = model(inputs["pixel_values_videos"])
    (tracks,) = processor.post_process_video_instance_segmentation(
        outputs, target_sizes=inputs["original_sizes"], resized_sizes=inputs["resized_sizes"], top_k=top_k
    )
    return tracks


def assert_same_tracks(tracks, expected, id2label):
    assert [(track["score"], track["label"], track["query_index"]) for track in tracks] == [
        (track["score"], track["label"], track["query_index"]) for track in expected
    ]
    assert [track["label_name"] for track in tracks] == [id2label[track["label"]] for track in expected]
    for track, expected_track in zip(tracks, expected):
        assert torch.equal(track["masks"], expected_track["masks"])


def test_saved_folder_holds_model_processor_and_pipeline(folder):
    config = json.loads((folder / "config.json").read_text())
    assert config["custom_pipelines"] == {
        TASK: {"impl": "pipeline_video_mask2former.VideoInstanceSegmentationPipeline", "pt": ["AutoModel"]}
    }
    for name in ("pipeline_video_mask2former.py", "video_preprocessor_config.json", "model.safetensors"):
        assert (folder / name).is_file(), name


def test_in_process_with_model_and_processor_objects(model, processor, tmp_path):
    register_video_instance_segmentation_pipeline()
    segmenter = pipeline(TASK, model=model, video_processor=processor, device="cpu")
    assert isinstance(segmenter, VideoInstanceSegmentationPipeline)
    frames = moving_box_frames(3, HEIGHT, WIDTH)
    expected = reference_tracks(model, processor, frames)
    id2label = model.config.id2label

    assert_same_tracks(segmenter(frames), expected, id2label)  # (T, H, W, C) array
    assert_same_tracks(segmenter([Image.fromarray(frame) for frame in frames]), expected, id2label)  # frame list
    assert_same_tracks(segmenter(str(write_frame_directory(tmp_path / "frames", frames))), expected, id2label)
    first, second = segmenter([frames, frames[:2]])  # a list of videos
    assert_same_tracks(first, expected, id2label)
    assert_same_tracks(second, reference_tracks(model, processor, frames[:2]), id2label)
    assert len(segmenter(frames, top_k=3)) == 3


def test_from_saved_folder_in_process(model, processor, folder):
    frames = moving_box_frames(2, HEIGHT, WIDTH)
    expected = reference_tracks(model, processor, frames)
    remote = pipeline(model=str(folder), trust_remote_code=True, device="cpu")
    assert type(remote).__name__ == "VideoInstanceSegmentationPipeline" and remote.task == TASK
    assert_same_tracks(remote(frames), expected, model.config.id2label)
    local = pipeline(TASK, model=str(folder), pipeline_class=VideoInstanceSegmentationPipeline, device="cpu")
    assert_same_tracks(local(frames), expected, model.config.id2label)


HUB_USER = """
    import torch
    from transformers import pipeline

    folder, video, outputs = sys.argv[1:4]
    segmenter = pipeline(model=folder, trust_remote_code=True, device="cpu")
    tracks = segmenter(video)
    assert "modeling_video_mask2former" not in sys.modules
    processor = type(segmenter.video_processor).__name__
    torch.save({"task": segmenter.task, "tracks": tracks, "processor": processor}, outputs)
"""


def test_saved_folder_runs_as_hub_custom_code_without_the_package(model, processor, folder, tmp_path):
    frames = moving_box_frames(3, HEIGHT, WIDTH)
    video = write_mp4(tmp_path / "clip.mp4", frames)
    run_as_hub_user(HUB_USER, tmp_path, str(folder), str(video), str(tmp_path / "outputs.pt"))
    result = torch.load(tmp_path / "outputs.pt", weights_only=False)
    assert result["task"] == TASK and result["processor"] == "VideoMask2FormerVideoProcessor"
    assert_same_tracks(result["tracks"], reference_tracks(model, processor, str(video)), model.config.id2label)
    assert result["tracks"][0]["masks"].shape == (3, HEIGHT, WIDTH)
