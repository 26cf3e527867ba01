"""`video-mask2former infer`: whole-split inference, resumable and sharded, checked against direct model calls."""

import argparse
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import datasets
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_utils
from transformers import AutoModel, AutoVideoProcessor

from modeling_video_mask2former import VideoMask2FormerVideoProcessor
from modeling_video_mask2former.data import (
    generate_synthetic_ytvis,
    load_youtubevis,
    synthetic_categories,
    write_parquet_shards,
)
from modeling_video_mask2former.evaluation import (
    STAT_NAMES,
    evaluate_ytvis,
    infer_command,
    inference,
    load_ground_truth,
    load_predictions,
)
from modeling_video_mask2former.results import tracks_to_ytvis_results

from .test_modeling_video_mask2former import VideoMask2FormerModelTester, build_model


NAMES = [category["name"] for category in synthetic_categories(4)]
INFER_SCRIPT = """import argparse, sys
from modeling_video_mask2former.evaluation import infer_command
parser = argparse.ArgumentParser()
infer_command.add_arguments(parser)
sys.exit(infer_command.run(parser.parse_args(sys.argv[1:])))
"""


def infer(*arguments) -> int:
    parser = argparse.ArgumentParser()
    infer_command.add_arguments(parser)
    return infer_command.run(parser.parse_args([*arguments, "--device", "cpu"]))


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("model")
    tester = VideoMask2FormerModelTester(batch_size=1, num_labels=len(NAMES))
    model = build_model(tester, id2label=dict(enumerate(NAMES)), label2id={name: i for i, name in enumerate(NAMES)})
    model.save_pretrained(folder)
    VideoMask2FormerVideoProcessor(size={"shortest_edge": 64, "longest_edge": 256}).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> tuple[Path, Path]:
    """Four videos, 48x64 and 64x48, 3-4 frames; the annotations use all four categories."""
    root = tmp_path_factory.mktemp("split")
    annotations = generate_synthetic_ytvis(
        root, num_videos=4, seed=1, frame_sizes=((48, 64), (64, 48)), num_frames=(3, 4)
    )
    return annotations, root / "JPEGImages"


@pytest.fixture(scope="module")
def expected(model_folder, split) -> list[dict]:
    """The result records of a direct model call per video."""
    model = AutoModel.from_pretrained(model_folder).eval()
    processor = AutoVideoProcessor.from_pretrained(model_folder)
    annotations, frames_dir = split
    records = []
    for video in json.loads(annotations.read_text())["videos"]:
        frames = [Image.open(frames_dir / name).convert("RGB") for name in video["file_names"]]
        inputs = processor(videos=[frames], return_tensors="pt")
        with torch.no_grad():
            outputs = model(inputs["pixel_values_videos"])
        tracks = processor.post_process_video_instance_segmentation(
            outputs, [(video["height"], video["width"])], inputs["resized_sizes"], top_k=10
        )[0]
        records += tracks_to_ytvis_results(tracks, video["id"], {label: label + 1 for label in range(len(NAMES))})
    return records


def read_results(output_dir: Path) -> list[dict]:
    return json.loads((output_dir / "results.json").read_text())


def leftovers(output_dir: Path) -> list[Path]:
    return [path for path in output_dir.rglob("*") if path.name.startswith(".")]


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_results_zip_and_evaluation(model_folder, split, expected, tmp_path, capsys):
    annotations, frames_dir = split
    output_dir = tmp_path / "out"
    arguments = ["--model", str(model_folder), "--annotations", str(annotations), "--frames", str(frames_dir)]
    assert infer(*arguments, "--output-dir", str(output_dir), "--zip", "--evaluate") == 0

    results = read_results(output_dir)
    assert results == expected
    load_predictions(results, load_ground_truth(annotations, require_annotations=False))
    with zipfile.ZipFile(output_dir / "submission.zip") as archive:
        assert archive.namelist() == ["results.json"]
        assert json.loads(archive.read("results.json")) == expected
    assert sorted(path.name for path in output_dir.iterdir()) == ["partial", "results.json", "submission.zip"]
    assert not leftovers(output_dir)

    stats = evaluate_ytvis(annotations, expected).stats
    lines = capsys.readouterr().out.splitlines()[-len(STAT_NAMES) :]
    assert [line.split() for line in lines] == [[name, f"{stats[name]:.4f}"] for name in STAT_NAMES]


def test_resume_after_interruption(model_folder, split, expected, tmp_path, monkeypatch):
    annotations, frames_dir = split
    output_dir = tmp_path / "out"
    arguments = ["--model", str(model_folder), "--annotations", str(annotations), "--frames", str(frames_dir)]
    arguments += ["--output-dir", str(output_dir), "--zip"]
    segment_video = inference.segment_video
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return segment_video(*args, **kwargs)

    monkeypatch.setattr(inference, "segment_video", interrupted)
    with pytest.raises(KeyboardInterrupt):
        infer(*arguments)
    assert sorted(path.name for path in output_dir.iterdir()) == ["partial"]
    assert sorted(path.name for path in (output_dir / "partial").iterdir()) == ["1.json", "run.json"]
    assert not leftovers(output_dir)

    def counted(*args, **kwargs):
        calls.append(args[3])
        return segment_video(*args, **kwargs)

    calls.clear()
    monkeypatch.setattr(inference, "segment_video", counted)
    assert infer(*arguments) == 0
    assert calls == [2, 3, 4]
    assert read_results(output_dir) == expected

    calls.clear()
    assert infer(*arguments) == 0
    assert calls == []
    assert read_results(output_dir) == expected

    assert infer(*arguments, "--top-k", "3") == 2  # another run's journal is not reused


def test_category_mapping_by_name(model_folder, split, expected, tmp_path, capsys):
    annotations, frames_dir = split
    data = json.loads(annotations.read_text())
    new_ids = {1: 40, 2: 10, 3: 30, 4: 20}
    data["categories"] = [{**category, "id": new_ids[category["id"]]} for category in data["categories"]][::-1]
    for annotation in data["annotations"]:
        annotation["category_id"] = new_ids[annotation["category_id"]]
    renumbered = write_json(tmp_path / "renumbered.json", data)
    output_dir = tmp_path / "out"
    arguments = ["--model", str(model_folder), "--frames", str(frames_dir)]
    assert infer(*arguments, "--annotations", str(renumbered), "--output-dir", str(output_dir)) == 0
    assert read_results(output_dir) == [
        {**record, "category_id": new_ids[record["category_id"]]} for record in expected
    ]

    next(category for category in data["categories"] if category["name"] == "blue_triangle")["name"] = "purple_ring"
    renamed = write_json(tmp_path / "renamed.json", data)
    assert infer(*arguments, "--annotations", str(renamed), "--output-dir", str(tmp_path / "renamed")) == 2
    assert "labels ['blue_triangle'] are not categories of the split" in capsys.readouterr().err
    assert not (tmp_path / "renamed").exists()

    ovis = ["--annotations", str(annotations), "--output-dir", str(tmp_path / "ovis"), "--dataset-categories", "ovis"]
    assert infer(*arguments, *ovis) == 2
    assert "has 25 categories but the model has 4 labels" in capsys.readouterr().err


def test_split_without_annotations(model_folder, split, expected, tmp_path, capsys):
    annotations, frames_dir = split
    data = json.loads(annotations.read_text())
    del data["annotations"]
    valid = write_json(tmp_path / "valid.json", data)
    arguments = ["--model", str(model_folder), "--annotations", str(valid), "--frames", str(frames_dir)]
    assert infer(*arguments, "--output-dir", str(tmp_path / "evaluated"), "--evaluate") == 2
    assert "--evaluate needs a split with annotations" in capsys.readouterr().err
    assert infer(*arguments, "--output-dir", str(tmp_path / "out"), "--zip") == 0
    assert read_results(tmp_path / "out") == expected
    with zipfile.ZipFile(tmp_path / "out" / "submission.zip") as archive:
        assert json.loads(archive.read("results.json")) == expected


def test_parquet_split(model_folder, split, expected, tmp_path, monkeypatch, capsys):
    annotations, frames_dir = split
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    shards = write_parquet_shards(load_youtubevis(annotations, frames_dir), tmp_path / "parquet", "20KB", "valid")
    assert len(shards) > 1
    output_dir = tmp_path / "out"
    arguments = ["--model", str(model_folder), "--dataset", str(tmp_path / "parquet"), "--output-dir", str(output_dir)]
    assert infer(*arguments, "--evaluate") == 0
    assert read_results(output_dir) == expected
    stats = evaluate_ytvis(annotations, expected).stats
    lines = capsys.readouterr().out.splitlines()[-len(STAT_NAMES) :]
    assert [line.split() for line in lines] == [[name, f"{stats[name]:.4f}"] for name in STAT_NAMES]


def assert_same_results(actual: list[dict], expected: list[dict]) -> None:
    """Same records up to float rounding: thread scheduling in other processes may change the last bits."""
    assert [(r["video_id"], r["category_id"]) for r in actual] == [(r["video_id"], r["category_id"]) for r in expected]
    for mine, theirs in zip(actual, expected):
        assert abs(mine["score"] - theirs["score"]) < 1e-4
        for ours, reference in zip(mine["segmentations"], theirs["segmentations"]):
            union = mask_utils.area(mask_utils.merge([ours, reference]))
            if union:
                assert mask_utils.area(mask_utils.merge([ours, reference], intersect=True)) / union > 0.98


def test_two_processes(model_folder, split, expected, tmp_path):
    annotations, frames_dir = split
    script = tmp_path / "infer.py"
    script.write_text(INFER_SCRIPT)
    output_dir = tmp_path / "out"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    command += [str(script), "--model", str(model_folder), "--annotations", str(annotations)]
    command += ["--frames", str(frames_dir), "--output-dir", str(output_dir), "--device", "cpu", "--zip"]
    # the reference ran with two threads (conftest); the same count gives the same float reductions
    environment = {**os.environ, "OMP_NUM_THREADS": "2"}
    completed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert_same_results(read_results(output_dir), expected)
    journal = sorted(path.name for path in (output_dir / "partial").iterdir())
    assert journal == ["1.json", "2.json", "3.json", "4.json", "run.json"]
    assert not leftovers(output_dir)
