"""`video-mask2former demo`: offline on CPU, with the shipped model, in about a minute; overlay, results and AP."""

import argparse
import json
import socket
import time

import av
import pytest
import torch
from safetensors import safe_open

from modeling_video_mask2former import VideoMask2FormerVideoProcessor, demo
from modeling_video_mask2former.evaluation import STAT_NAMES, load_ground_truth, load_predictions
from modeling_video_mask2former.publishing import save_model_folder

from .test_modeling_video_mask2former import VideoMask2FormerModelTester, build_model
from .test_predict_cli import moving_box_frames, write_mp4


# The shipped model reaches AP 0.484 on the demo's videos (its model card: 48.4); the floor leaves room for other CPUs.
DEMO_AP_FLOOR = 0.4
TIME_LIMIT_S = 60


def run_demo(*arguments: str) -> int:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return demo.run(parser.parse_args(list(arguments)))


@pytest.fixture(autouse=True)
def _one_thread(_two_threads):
    """One thread: on a busy shared machine two OpenMP threads per process can run 10x slower, not 2x faster."""
    torch.set_num_threads(1)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("the network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_shipped_demo_model_is_small_and_complete():
    files = {path.name for path in demo.DEMO_MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "video_preprocessor_config.json", "README.md"} <= files
    assert sum(path.stat().st_size for path in demo.DEMO_MODEL_DIR.iterdir()) <= 10 * 2**20
    with safe_open(demo.DEMO_MODEL_DIR / "model.safetensors", "pt") as weights:
        assert weights.keys()


def test_demo_runs_offline_on_cpu_within_a_minute(no_network, tmp_path, capsys):
    start = time.perf_counter()
    assert run_demo("--output-dir", str(tmp_path / "demo"), "--device", "cpu") == 0
    elapsed = time.perf_counter() - start
    output = capsys.readouterr().out
    out = tmp_path / "demo"

    ground_truth = json.loads((out / "synthetic" / "valid.json").read_text())
    assert len(ground_truth["videos"]) == demo.NUM_DEMO_VIDEOS
    records = json.loads((out / "results.json").read_text())
    load_predictions(records, load_ground_truth(ground_truth))  # valid YouTube-VIS results for this split
    assert len(records) == 10 * demo.NUM_DEMO_VIDEOS  # the config's top-k per video

    with av.open(str(out / "overlay.mp4")) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == sum(video["length"] for video in ground_truth["videos"])
    assert frames[0].shape == (*demo.DEMO_FRAME_SIZE, 3)

    stats = json.loads((out / "ap.json").read_text())
    assert list(stats)[: len(STAT_NAMES)] == list(STAT_NAMES)
    assert stats["AP"] >= DEMO_AP_FLOOR
    table = (out / "ap.txt").read_text()
    assert table.startswith("AP ") and "AP-red_ellipse" in table
    for name in ("overlay.mp4", "results.json", "ap.txt"):
        assert str(out / name) in output
    assert elapsed < TIME_LIMIT_S, f"the demo took {elapsed:.0f} s"


def test_demo_on_your_own_video_with_another_model(no_network, tmp_path, capsys):
    model_dir = tmp_path / "model"
    processor = VideoMask2FormerVideoProcessor(size={"shortest_edge": 64, "longest_edge": 256})
    save_model_folder(build_model(VideoMask2FormerModelTester(batch_size=1)), processor, model_dir)
    video = write_mp4(tmp_path / "mine.mp4", moving_box_frames(4, 64, 96))

    arguments = ("--model", str(model_dir), "--device", "cpu")
    assert run_demo("--video", str(video), "--output-dir", str(tmp_path / "mine"), *arguments) == 0
    assert len(json.loads((tmp_path / "mine" / "results.json").read_text())) == 10
    assert (tmp_path / "mine" / "overlay.mp4").stat().st_size > 0

    # synthetic videos with a model whose classes are not the shapes: everything but the AP
    assert run_demo("--output-dir", str(tmp_path / "synthetic"), *arguments) == 0
    assert (tmp_path / "synthetic" / "overlay.mp4").is_file() and not (tmp_path / "synthetic" / "ap.txt").exists()
    assert "AP: not computed" in capsys.readouterr().out


def test_demo_with_a_missing_model_is_one_line_error(tmp_path, capsys):
    assert run_demo("--model", str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "out")) == 2
    assert capsys.readouterr().err.startswith("video-mask2former demo: error: Cannot load a model from")
