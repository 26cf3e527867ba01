"""Smoke tests of the benchmark scripts on a tiny model and small frames (the real sizes take minutes)."""

import json
import sys
from pathlib import Path

import pytest

from .conftest import FIXTURES


sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_inference  # noqa: E402
import bench_processing  # noqa: E402
import bench_training_step  # noqa: E402
import bench_windowed_memory  # noqa: E402
import common  # noqa: E402
import gpu_check  # noqa: E402
import profile_inference  # noqa: E402
import torch  # noqa: E402


TINY = str(FIXTURES / "tiny" / "tiny_r50_config.yaml")
SMALL = {"threads": 2, "frame_size": [64, 96], "target_size": [96, 128], "repeats": 1, "model": TINY}


@pytest.mark.parametrize("kind", ["video", "image", "full", "windowed"])
def test_inference_configurations(kind):
    result = bench_inference.run_configuration({"kind": kind, "frames": 3, "window": 2, "overlap": 1, **SMALL})
    assert result["seconds"] > 0 and result["peak_rss_mib"] > result["rss_after_build_mib"] / 2
    if kind == "video":
        assert result["mask_shape"] == [3, 96, 128]
        assert set(result["stages"][0]) == {
            "preprocess", "backbone", "pixel_decoder", "transformer_decoder", "model", "postprocess"
        }  # fmt: skip
    if kind == "image":
        assert result["stages"][0]["pixel_decoder"] > 0


def test_inference_main_runs_children_and_writes_json(tmp_path):
    output = tmp_path / "inference.json"
    argv = ["--models", TINY, "--frames", "1", "--frame-size", "64x96", "--target-size", "96x128", "--repeats", "1"]
    bench_inference.main([*argv, "--windowed-frames", "--output", str(output)])
    report = json.loads(output.read_text())
    assert report["environment"]["threads"] == 2 and report["environment"]["torch"]
    assert [(r["kind"], r["frames"]) for r in report["results"]] == [("video", 1), ("image", 1)]
    rows = bench_inference.summary_rows(report["results"])
    assert "faster than per-frame image model" in rows[1]


def test_baseline_checkout_holds_the_package(tmp_path):
    root = common.checkout_package("HEAD", str(tmp_path))
    assert (Path(root) / "modeling_video_mask2former" / "modeling_video_mask2former.py").is_file()


def test_training_step():
    spec = {**SMALL, "frames": 2, "batch_size": 2, "frame_size": [64, 96]}
    result = bench_training_step.run_configuration(spec)
    assert result["loss"] > 0
    assert set(result["stages"][0]) == {"forward", "backward", "update"}
    assert bench_training_step.summary_rows([result])[1].startswith("tiny_r50_config")


def test_processing(tmp_path):
    output = tmp_path / "processing.json"
    report = bench_processing.main(["--frames", "3", "--video-size", "72x128", "--short-side", "36", "--repeats", "1",
                                    "--output", str(output)])  # fmt: skip
    assert set(report["ms_per_frame"]) == {"decode", "preprocess", "postprocess", "rle"}
    assert json.loads(output.read_text())["ms_per_frame"] == report["ms_per_frame"]


def test_gpu_check_dry_run_on_cpu(tmp_path):
    output = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--device", "cpu", "--dry-run", "--output", str(output)]) == 0
    (result,) = json.loads(output.read_text())["results"]
    assert result["model"] == "tiny" and result["agreement"] > 0 and not result["failures"]


def test_gpu_check_parity_rows_on_cpu():
    rows = gpu_check.check_parity(torch.device("cpu"))
    assert {(row["model"], row["case"], row["tf32"]) for row in rows} == {
        (model, case, tf32)
        for model in ("tiny_r50", "tiny_swin")
        for case in ("t3_96x128", "t2_100x130")
        for tf32 in (False, True)
    }
    assert all(0 < row["class_logits"] <= 1e-4 and 0 < row["mask_logits"] <= 5e-4 for row in rows)


def test_profile_names_operators_and_parts():
    spec = {"model": TINY, "frames": 2, "frame_size": [64, 96], "threads": 2, "top": 3}
    result = profile_inference.profile_configuration(spec) | {"source": "current"}
    assert len(result["operators"]) == 3 and all(op["name"].startswith("aten::") for op in result["operators"])
    parts = result["components"]
    assert 0 < parts["pixel decoder: deformable attention"] < parts["pixel decoder"] < result["forward_seconds"]
    assert 0 < parts["transformer decoder: masked attention"] < parts["transformer decoder"]
    assert profile_inference.table(result)[0].startswith("current: ")


def test_memory_summary_fits_the_line_and_the_spread():
    results = [{"mode": "full", "frames": t, "peak_rss_mib": 1000 + 40 * t} for t in (16, 32, 64)]
    results += [{"mode": "windowed", "frames": t, "peak_rss_mib": peak} for t, peak in ((64, 1500), (512, 1575))]
    summary = bench_windowed_memory.summarize(results, memory_gib=24)
    assert summary["full"] == {"mib_per_frame": 40.0, "intercept_mib": 1000, "longest_clip": (24 * 1024 - 1000) // 40}
    assert summary["windowed"] == {"peak_spread": 1.05, "frames": [64, 512]}
