"""`video-mask2former predict` end to end on real files: MP4s and frame folders in, results.json and overlays out."""

import json
from pathlib import Path
from types import SimpleNamespace

import av
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from modeling_video_mask2former import VideoMask2FormerVideoProcessor, cli
from modeling_video_mask2former.predict import label_to_category_id
from modeling_video_mask2former.publishing import save_model_folder
from modeling_video_mask2former.visualization import draw_tracks, track_colors

from .test_modeling_video_mask2former import VideoMask2FormerModelTester, build_model


HEIGHT, WIDTH = 64, 96


def moving_box_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """`(T, H, W, 3)` uint8 frames: a textured background and a bright box moving right."""
    rows, columns = np.mgrid[:height, :width]
    background = np.stack([(rows * 3) % 256, (columns * 2) % 256, np.full_like(rows, 60)], axis=-1)
    frames = np.repeat(background[None].astype(np.uint8), num_frames, axis=0)
    for index in range(num_frames):
        left = (4 * index) % max(1, width - width // 3)
        frames[index, height // 4 : height // 4 + height // 2, left : left + width // 3] = (250, 240, 30)
    return frames


def write_mp4(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    """Writes `(T, H, W, 3)` uint8 frames (even H and W) as H.264 with PyAV."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width, stream.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_frame_directory(path: Path, frames, mode: str = "RGB") -> Path:
    """Writes frames as `00000.png`, ... (converted to `mode`)."""
    path.mkdir()
    for index, frame in enumerate(frames):
        Image.fromarray(frame).convert(mode).save(path / f"{index:05d}.png")
    return path


def decode_mp4(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    processor = VideoMask2FormerVideoProcessor(size={"shortest_edge": HEIGHT, "longest_edge": 4 * WIDTH})
    save_model_folder(build_model(VideoMask2FormerModelTester(batch_size=1)), processor, folder)
    return folder


def predict(model_folder, video, output_dir, *options):
    arguments = ["--model", str(model_folder), "--video", str(video), "--output-dir", str(output_dir)]
    return cli.main(["predict", *arguments, "--device", "cpu", *options])


def check_outputs(output_dir: Path, num_frames: int, height: int, width: int, num_tracks: int | None = 10):
    records = json.loads((output_dir / "results.json").read_text())
    if num_tracks is not None:
        assert len(records) == num_tracks
    scores = [record["score"] for record in records]
    assert scores == sorted(scores, reverse=True)
    for record in records:
        assert record["video_id"] == 1 and 1 <= record["category_id"] <= 5
        assert len(record["segmentations"]) == num_frames
        assert all(rle["size"] == [height, width] for rle in record["segmentations"])
        mask_utils.decode(record["segmentations"])  # valid RLE
    overlay = decode_mp4(output_dir / "overlay.mp4")
    assert overlay.shape == (num_frames, height, width, 3)
    return records


def test_mp4_round_trip_full_mode(model_folder, tmp_path, capsys):
    frames = moving_box_frames(6, HEIGHT, WIDTH)
    video = write_mp4(tmp_path / "clip.mp4", frames)
    assert predict(model_folder, video, tmp_path / "out") == 0
    records = check_outputs(tmp_path / "out", 6, HEIGHT, WIDTH)
    output = capsys.readouterr().out
    assert str(tmp_path / "out" / "results.json") in output and str(tmp_path / "out" / "overlay.mp4") in output

    # the records are the pipeline's tracks on the same video
    from transformers import pipeline

    segmenter = pipeline(model=str(model_folder), trust_remote_code=True, device="cpu")
    tracks = segmenter(str(video))
    assert [record["score"] for record in records] == pytest.approx([track["score"] for track in tracks], abs=0)
    assert [record["category_id"] for record in records] == [track["label"] + 1 for track in tracks]
    for record, track in zip(records, tracks):
        decoded = mask_utils.decode(record["segmentations"]).transpose(2, 0, 1)
        np.testing.assert_array_equal(decoded, track["masks"].numpy())


def test_frame_directory_windowed_with_gif(model_folder, tmp_path):
    frames = moving_box_frames(9, HEIGHT, WIDTH)
    directory = write_frame_directory(tmp_path / "frames", frames)
    assert predict(model_folder, directory, tmp_path / "out", "--window", "4", "--overlap", "1", "--gif") == 0
    check_outputs(tmp_path / "out", 9, HEIGHT, WIDTH, num_tracks=None)
    with Image.open(tmp_path / "out" / "overlay.gif") as gif:
        assert gif.n_frames == 9 and gif.size == (WIDTH, HEIGHT)


def test_folder_without_video_processor_uses_config_sizes(tmp_path):
    folder = tmp_path / "model"
    build_model(VideoMask2FormerModelTester(batch_size=1)).save_pretrained(folder)
    video = write_mp4(tmp_path / "clip.mp4", moving_box_frames(2, HEIGHT, WIDTH))
    assert predict(folder, video, tmp_path / "out", "--min-size", "32", "--top-k", "3") == 0
    check_outputs(tmp_path / "out", 2, HEIGHT, WIDTH, num_tracks=3)


@pytest.mark.parametrize(
    "name, frames, mode",
    [
        ("one_frame", moving_box_frames(1, HEIGHT, WIDTH), "RGB"),
        ("grayscale", moving_box_frames(3, HEIGHT, WIDTH), "L"),
        ("rgba", moving_box_frames(3, HEIGHT, WIDTH), "RGBA"),
        ("tiny", moving_box_frames(3, 20, 24), "RGB"),
    ],
)
def test_unusual_frames_work(model_folder, tmp_path, name, frames, mode):
    directory = write_frame_directory(tmp_path / name, frames, mode)
    assert predict(model_folder, directory, tmp_path / "out") == 0
    check_outputs(tmp_path / "out", len(frames), *frames.shape[1:3])


def test_one_frame_mp4_works_windowed(model_folder, tmp_path):
    video = write_mp4(tmp_path / "one.mp4", moving_box_frames(1, HEIGHT, WIDTH))
    assert predict(model_folder, video, tmp_path / "out", "--window", "3", "--overlap", "1") == 0
    check_outputs(tmp_path / "out", 1, HEIGHT, WIDTH)


def write_empty_mp4(path: Path) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height, stream.width, stream.pix_fmt = HEIGHT, WIDTH, "yuv420p"
        container.start_encoding()
        container.mux(stream.encode())
    return path


def bad_inputs(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """name -> (video argument, text the error line must contain)."""
    (tmp_path / "garbage.mp4").write_bytes(b"\x00not a video" * 64)
    (tmp_path / "zero_bytes.mp4").write_bytes(b"")
    non_image = write_frame_directory(tmp_path / "non_image", moving_box_frames(2, HEIGHT, WIDTH))
    (non_image / "00001.png").write_text("not an image")
    mixed = write_frame_directory(tmp_path / "mixed", moving_box_frames(2, HEIGHT, WIDTH))
    Image.fromarray(moving_box_frames(1, 32, 32)[0]).save(mixed / "00002.png")
    (tmp_path / "empty_dir").mkdir()
    return {
        "missing": (tmp_path / "missing.mp4", "missing.mp4"),
        "garbage": (tmp_path / "garbage.mp4", "garbage.mp4"),
        "zero_bytes": (tmp_path / "zero_bytes.mp4", "zero_bytes.mp4"),
        "zero_frames": (write_empty_mp4(tmp_path / "zero_frames.mp4"), "no video frames"),
        "non_image": (non_image, "00001.png"),
        "mixed_sizes": (mixed, "00002.png"),
        "empty_dir": (tmp_path / "empty_dir", "no frames"),
    }


@pytest.mark.parametrize(
    "name", ["missing", "garbage", "zero_bytes", "zero_frames", "non_image", "mixed_sizes", "empty_dir"]
)
def test_bad_inputs_fail_with_one_clear_line(model_folder, tmp_path, capsys, name):
    video, expected = bad_inputs(tmp_path)[name]
    assert predict(model_folder, video, tmp_path / "out") == 2
    error_lines = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(error_lines) == 1 and expected in error_lines[0], error_lines
    assert not (tmp_path / "out" / "results.json").exists()


def test_bad_options_fail_with_one_clear_line(model_folder, tmp_path, capsys):
    video = write_mp4(tmp_path / "clip.mp4", moving_box_frames(2, HEIGHT, WIDTH))
    assert predict(model_folder, video, tmp_path / "out", "--window", "4", "--overlap", "4") == 2
    assert "--overlap (4) must be smaller than --window (4)" in capsys.readouterr().err
    assert predict(tmp_path / "no_model", video, tmp_path / "out") == 2
    assert "Cannot load a model" in capsys.readouterr().err


def test_draw_tracks_colours_masks_and_writes_labels():
    frame = np.zeros((40, 60, 3), np.uint8)
    mask = np.zeros((40, 60), bool)
    mask[20:35, 10:50] = True
    (color,) = track_colors(1)
    drawn = draw_tracks(frame, [mask], [color], ["cat 0.93"], alpha=0.5)
    assert drawn.shape == frame.shape and drawn.dtype == np.uint8
    np.testing.assert_array_equal(drawn[34, 45], np.round(np.asarray(color) * 0.5))  # blended, away from the text
    assert (drawn[:20, 10:50] != 0).any()  # the label box sits above the mask
    assert not drawn[:, :10].any() and not frame.any()  # nothing left of the mask; the input is untouched
    assert len(set(track_colors(10))) == 10


def test_category_ids_default_to_label_plus_one_unless_the_config_maps_them():
    assert label_to_category_id(SimpleNamespace(num_labels=3)) == {0: 1, 1: 2, 2: 3}
    mapped = SimpleNamespace(num_labels=2, label_to_category_id={"0": 7, "1": 3})  # as read back from config.json
    assert label_to_category_id(mapped) == {0: 7, 1: 3}
    assert label_to_category_id(SimpleNamespace(num_labels=2, label_to_category_id=[4, 9])) == {0: 4, 1: 9}
