"""`video-mask2former push`: the dry-run folder works as a Hub repo, and the upload is one commit of that folder."""

import argparse
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import HfApi, ModelCard
from transformers import AutoModel, pipeline

from modeling_video_mask2former import VideoMask2FormerVideoProcessor, push
from modeling_video_mask2former.model_card import MODEL_ID_PLACEHOLDER, conversion_model_card

from .conftest import run_as_hub_user
from .test_modeling_video_mask2former import VideoMask2FormerModelTester, build_model
from .test_pipeline import assert_same_tracks, reference_tracks
from .test_predict_cli import moving_box_frames, write_mp4


HEIGHT, WIDTH = 64, 96
REPO_ID = "someone/video-mask2former-tiny"
UPLOADED = {
    "README.md",
    "config.json",
    "model.safetensors",
    "video_preprocessor_config.json",
    "configuration_video_mask2former.py",
    "modeling_video_mask2former.py",
    "loss_video_mask2former.py",
    "pipeline_video_mask2former.py",
    "video_processing_video_mask2former.py",
}


@pytest.fixture(scope="module")
def model():
    return build_model(VideoMask2FormerModelTester(batch_size=1))


@pytest.fixture(scope="module")
def processor():
    return VideoMask2FormerVideoProcessor(size={"shortest_edge": HEIGHT, "longest_edge": 4 * WIDTH})


@pytest.fixture(scope="module")
def model_dir(model, processor, tmp_path_factory):
    """A folder as `convert` or `train` leaves it: no pipeline registration, a card, and files not to upload."""
    folder = tmp_path_factory.mktemp("converted")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    conversion_model_card(model.config, "tiny.pkl").save(folder / "README.md")
    (folder / "training_args.bin").write_bytes(b"not uploaded")
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "model.safetensors").write_bytes(b"not uploaded")
    return folder


def run_push(*arguments: str) -> int:
    parser = argparse.ArgumentParser()
    push.add_arguments(parser)
    return push.run(parser.parse_args(list(arguments)))


@pytest.fixture(scope="module")
def dry_run(model_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dry-run") / "upload"
    assert run_push("--model", str(model_dir), "--repo-id", REPO_ID, "--dry-run", str(folder)) == 0
    return folder


def files_of(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def test_dry_run_writes_and_lists_the_upload(dry_run, capsys, model_dir, tmp_path):
    files = files_of(dry_run)
    assert UPLOADED <= files and not {"training_args.bin", "checkpoint-10/model.safetensors"} & files
    assert files - UPLOADED <= {"deformable_attention.py"}  # custom-code modules the model file imports

    config = json.loads((dry_run / "config.json").read_text())
    assert "video-instance-segmentation" in config["custom_pipelines"] and "AutoModel" in config["auto_map"]
    card = ModelCard.load(dry_run / "README.md")
    assert f'pipeline(model="{REPO_ID}", trust_remote_code=True)' in str(card)
    assert MODEL_ID_PLACEHOLDER not in str(card) and card.data.pipeline_tag == "image-segmentation"

    assert run_push("--model", str(model_dir), "--repo-id", REPO_ID, "--dry-run", str(tmp_path / "listed")) == 0
    output = capsys.readouterr().out
    listed = output[output.index("Would upload") :].splitlines()
    assert listed[0].startswith(f"Would upload {len(files)} files") and REPO_ID in listed[0]
    assert {line.strip() for line in listed[1:]} == files


def test_dry_run_refuses_a_non_empty_folder(model_dir, dry_run, capsys):
    assert run_push("--model", str(model_dir), "--repo-id", REPO_ID, "--dry-run", str(dry_run)) == 2
    assert "is not empty" in capsys.readouterr().err


def test_folder_without_card_gets_one(model, tmp_path):
    model.save_pretrained(tmp_path / "trained")
    assert (
        run_push(
            "--model",
            str(tmp_path / "trained"),
            "--repo-id",
            REPO_ID,
            "--license",
            "mit",
            "--dry-run",
            str(tmp_path / "out"),
        )
        == 0
    )
    card = ModelCard.load(tmp_path / "out" / "README.md")
    assert card.data.license == "mit" and f'"{REPO_ID}"' in str(card)
    size = json.loads((tmp_path / "out" / "video_preprocessor_config.json").read_text())["size"]
    assert size == {"shortest_edge": model.config.test_min_size, "longest_edge": model.config.test_max_size}


def test_dry_run_folder_loads_in_process(dry_run, model, processor):
    frames = moving_box_frames(2, HEIGHT, WIDTH)
    loaded = AutoModel.from_pretrained(dry_run, trust_remote_code=True)
    assert all(torch.equal(value, model.state_dict()[key]) for key, value in loaded.state_dict().items())
    segmenter = pipeline(model=str(dry_run), trust_remote_code=True, device="cpu")
    assert_same_tracks(segmenter(frames), reference_tracks(model, processor, frames), model.config.id2label)


HUB_USER = """
    import torch
    from transformers import AutoModel, AutoVideoProcessor, pipeline

    folder, video, outputs = sys.argv[1:4]
    model = AutoModel.from_pretrained(folder, trust_remote_code=True)
    processor = AutoVideoProcessor.from_pretrained(folder, trust_remote_code=True)
    tracks = pipeline(model=folder, trust_remote_code=True, device="cpu")(video)
    assert "modeling_video_mask2former" not in sys.modules
    torch.save({"model": type(model).__name__, "processor": type(processor).__name__, "tracks": tracks}, outputs)
"""


def test_dry_run_folder_works_as_hub_custom_code_without_the_package(dry_run, model, processor, tmp_path):
    video = write_mp4(tmp_path / "clip.mp4", moving_box_frames(3, HEIGHT, WIDTH))
    run_as_hub_user(HUB_USER, tmp_path, str(dry_run), str(video), str(tmp_path / "outputs.pt"))
    result = torch.load(tmp_path / "outputs.pt", weights_only=False)
    assert result["model"] == "VideoMask2FormerForVideoInstanceSegmentation"
    assert result["processor"] == "VideoMask2FormerVideoProcessor"
    assert_same_tracks(result["tracks"], reference_tracks(model, processor, str(video)), model.config.id2label)


def test_push_is_one_commit_of_the_dry_run_folder(model_dir, dry_run, monkeypatch, capsys):
    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return SimpleNamespace(repo_id=repo_id)

    def upload_folder(self, **kwargs):
        folder = Path(kwargs["folder_path"])
        contents = {name: (folder / name).read_bytes() for name in files_of(folder)}
        calls.append(("upload_folder", kwargs["repo_id"], contents))
        return SimpleNamespace(commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/abc")

    def create_commit(self, *args, **kwargs):
        calls.append(("create_commit", args, kwargs))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)

    assert run_push("--model", str(model_dir), "--repo-id", REPO_ID, "--private") == 0
    assert [call[0] for call in calls] == ["create_repo", "upload_folder"]
    assert calls[0][1] == REPO_ID and calls[0][2] == {"private": True, "exist_ok": True}
    uploaded = calls[1][2]
    assert calls[1][1] == REPO_ID and set(uploaded) == files_of(dry_run)
    for name in ("README.md", "config.json", "video_preprocessor_config.json"):
        assert uploaded[name] == (dry_run / name).read_bytes(), name
    assert "commit/abc" in capsys.readouterr().out


def test_missing_model_folder_is_one_line_error(tmp_path, capsys):
    assert run_push("--model", str(tmp_path / "nothing"), "--repo-id", REPO_ID) == 2
    assert capsys.readouterr().err.startswith("video-mask2former push: error: --model")
