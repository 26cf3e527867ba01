"""Training: the original recipe's parameter groups and schedule, data, resume, two processes, AP evaluation."""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from pycocotools import mask as mask_utils
from safetensors.torch import load_file
from torch import nn
from transformers import TrainerCallback

from modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation
from modeling_video_mask2former.data import generate_synthetic_ytvis, load_youtubevis, make_training_clip
from modeling_video_mask2former.evaluation import STAT_NAMES, evaluate_ytvis
from modeling_video_mask2former.results import tracks_to_ytvis_results
from modeling_video_mask2former.training import (
    VideoMask2FormerDataCollator,
    VideoMask2FormerTrainer,
    YouTubeVISClipDataset,
    YouTubeVISEvaluator,
    YouTubeVISVideoDataset,
    command,
    default_training_arguments,
    get_parameter_groups,
    get_step_schedule,
    load_training_videos,
)
from modeling_video_mask2former.video_processing_video_mask2former import VideoMask2FormerVideoProcessor

from .test_modeling_video_mask2former import VideoMask2FormerModelTester


REPO_ROOT = Path(__file__).resolve().parent.parent
NUM_LABELS = 4
FRAME_SIZES = ((64, 96), (80, 112))
CLIP_SIZES = {"min_sizes": (64, 80), "max_size": 128}


def tiny_model(backbone: str = "resnet", seed: int = 0) -> VideoMask2FormerForVideoInstanceSegmentation:
    torch.manual_seed(seed)
    config = VideoMask2FormerModelTester(backbone=backbone, num_labels=NUM_LABELS).get_config(
        test_min_size=64, test_max_size=128
    )
    return VideoMask2FormerForVideoInstanceSegmentation(config)


def small_processor() -> VideoMask2FormerVideoProcessor:
    return VideoMask2FormerVideoProcessor(size={"shortest_edge": 64, "longest_edge": 128})


def training_arguments(output_dir, **overrides):
    kwargs = {
        "max_steps": 6,
        "per_device_train_batch_size": 2,
        "dataloader_num_workers": 0,
        "logging_steps": 1,
        "save_strategy": "no",
        "disable_tqdm": True,
        "seed": 0,
    }
    return default_training_arguments(str(output_dir), **{**kwargs, **overrides})


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """8 training and 3 held-out synthetic videos: `{"train"|"valid": (annotation json, frame folder)}`."""
    root = tmp_path_factory.mktemp("synthetic")
    splits = {}
    for split, num_videos, seed in (("train", 8, 0), ("valid", 3, 1)):
        annotations = generate_synthetic_ytvis(
            root / split, num_videos=num_videos, seed=seed, frame_sizes=FRAME_SIZES, num_frames=(3, 5), split=split
        )
        splits[split] = (annotations, root / split / "JPEGImages")
    return splits


@pytest.fixture(scope="module")
def train_videos(synthetic):
    return load_training_videos(*synthetic["train"])


@pytest.mark.parametrize("backbone", ["resnet", "swin"])
def test_parameter_groups_follow_the_original(backbone):
    model = tiny_model(backbone)
    groups = get_parameter_groups(model, learning_rate=1e-4, weight_decay=0.05)
    settings = {id(p): (group["lr"], group["weight_decay"]) for group in groups for p in group["params"]}
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert sum(len(group["params"]) for group in groups) == len(settings) == len(trainable)

    backbone_module = model.model.pixel_level_module.encoder
    backbone_ids = {id(p) for p in backbone_module.parameters()}
    checked = set()
    for module_name, module in model.named_modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad:
                assert id(parameter) not in settings, f"frozen {module_name}.{name} is optimised"
                continue
            lr, decay = settings[id(parameter)]
            assert lr == pytest.approx(1e-5 if id(parameter) in backbone_ids else 1e-4)
            no_decay = isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d, nn.Embedding)) or (
                name == "relative_position_bias_table"
            )
            assert decay == (0.0 if no_decay else 0.05), f"{module_name}.{name}"
            checked.add((type(module).__name__, name, decay))

    transformer = model.model.transformer_module
    for embedding in (transformer.queries_features, transformer.queries_embedder, transformer.level_embed):
        assert settings[id(embedding.weight)][1] == 0.0
    # The pixel decoder's `level_embed` is a plain parameter, decayed as in the original.
    assert settings[id(model.model.pixel_level_module.decoder.level_embed)] == (1e-4, 0.05)
    assert settings[id(model.class_predictor.weight)] == (1e-4, 0.05)
    assert any(kind == "GroupNorm" and decay == 0.0 for kind, _, decay in checked)
    if backbone == "swin":
        assert ("SwinRelativePositionBias", "relative_position_bias_table", 0.0) in checked
        assert all(
            settings[id(p)][1] == 0.0
            for m in backbone_module.modules()
            if isinstance(m, nn.LayerNorm)
            for p in m.parameters()
        )
    else:  # detectron2's FrozenBN: no parameters to optimise
        assert not any(
            p.requires_grad for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters()
        )


def test_step_schedule_drops_tenfold_at_the_milestones():
    parameters = [nn.Parameter(torch.zeros(1)), nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.AdamW([{"params": parameters[:1], "lr": 1e-4}, {"params": parameters[1:], "lr": 1e-5}])
    schedule = get_step_schedule(optimizer, milestones=[4, 6])
    rates = []
    for _ in range(8):
        rates.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        schedule.step()
    expected = [[1e-4, 1e-5]] * 4 + [[1e-5, 1e-6]] * 2 + [[1e-6, 1e-7]] * 2
    torch.testing.assert_close(torch.tensor(rates, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64))


def test_trainer_uses_the_recipe(tmp_path, train_videos):
    args = training_arguments(tmp_path, max_steps=9)
    assert (args.learning_rate, args.weight_decay, args.max_grad_norm) == (1e-4, 0.05, 0.01)
    assert not args.remove_unused_columns and not args.eval_do_concat_batches
    assert not (args.bf16 or args.fp16) or torch.cuda.is_available()
    trainer = VideoMask2FormerTrainer(model=tiny_model(), args=args, train_dataset=YouTubeVISClipDataset(train_videos))
    trainer.create_optimizer_and_scheduler(num_training_steps=9)
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    names = [group["name"] for group in trainer.optimizer.param_groups]
    assert names == ["head_decay", "head_no_decay", "backbone_decay"]
    factors = []
    for _ in range(9):
        factors.append(trainer.lr_scheduler.get_last_lr()[0] / 1e-4)
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert factors == pytest.approx([1.0] * 6 + [0.1] * 3)  # milestone at 2/3 of the steps


def test_collator_normalises_and_pads_to_a_multiple_of_32():
    generator = torch.Generator().manual_seed(0)
    frames = [torch.randint(0, 256, (2, 3, 64, 96), dtype=torch.uint8, generator=generator) for _ in range(2)]
    frames[1] = frames[1][..., :50, :70]
    masks = [torch.ones(1, 2, 64, 96), torch.ones(2, 2, 50, 70)]
    examples = [{"frames": f, "mask_labels": m, "class_labels": torch.arange(len(m))} for f, m in zip(frames, masks)]
    batch = VideoMask2FormerDataCollator()(examples)
    assert batch["pixel_values_videos"].shape == (2, 2, 3, 64, 96)
    mean = torch.tensor([123.675, 116.28, 103.53])[:, None, None]
    std = torch.tensor([58.395, 57.12, 57.375])[:, None, None]
    torch.testing.assert_close(batch["pixel_values_videos"][1, :, :, :50, :70], (frames[1].float() - mean) / std)
    assert batch["pixel_values_videos"][1, :, :, 50:].abs().sum() == 0
    assert batch["pixel_values_videos"][1, :, :, :, 70:].abs().sum() == 0
    assert [m.shape for m in batch["mask_labels"]] == [(1, 2, 64, 96), (2, 2, 64, 96)]
    assert batch["mask_labels"][1].sum() == 2 * 2 * 50 * 70
    assert isinstance(batch["class_labels"], list)

    examples[0]["frames"] = torch.zeros(2, 3, 65, 96, dtype=torch.uint8)
    examples[0]["mask_labels"] = torch.ones(1, 2, 65, 96)
    assert VideoMask2FormerDataCollator()(examples)["pixel_values_videos"].shape[-2:] == (96, 96)


def test_clips_are_reproducible_and_absent_tracks_are_no_object(train_videos):
    dataset = YouTubeVISClipDataset(train_videos, **CLIP_SIZES, seed=3)
    first = [dataset[index] for index in range(len(dataset))]
    dataset.set_epoch(1)
    second = [dataset[index] for index in range(len(dataset))]
    dataset.set_epoch(0)
    for index in reversed(range(len(dataset))):
        torch.testing.assert_close(dataset[index], first[index], atol=0, rtol=0)
    assert any(
        a["frames"].shape != b["frames"].shape or not torch.equal(a["frames"], b["frames"])
        for a, b in zip(first, second)
    )

    no_object = 0
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            video = dataset.videos[index].to_pylist()[0]
            clip = make_training_clip(video, dataset.generator(index), **CLIP_SIZES)
            item = dataset[index]
            assert torch.equal(item["frames"], clip["pixel_values"])
            absent = clip["track_ids"][:, -1] == -1
            assert torch.equal(item["class_labels"][~absent], clip["class_labels"][~absent])
            assert (item["class_labels"][absent] == NUM_LABELS).all()
            no_object += int(absent.sum())
    assert no_object > 0


def test_training_steps_lower_the_loss_on_a_fixed_batch(tmp_path, train_videos):
    clip_dataset = YouTubeVISClipDataset(train_videos, **CLIP_SIZES)
    fixed = [clip_dataset[0], clip_dataset[1]]

    class FixedBatch(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, index):
            return fixed[index]

    collator = VideoMask2FormerDataCollator()
    model = tiny_model()
    batch = collator(fixed)

    def fixed_loss():
        torch.manual_seed(0)  # the same sampled points, so the losses are comparable
        with torch.no_grad():
            return model.train()(**batch).loss.item()

    before = fixed_loss()
    args = training_arguments(tmp_path, max_steps=20, learning_rate=3e-3)
    trainer = VideoMask2FormerTrainer(
        model=model, args=args, train_dataset=FixedBatch(), data_collator=collator, lr_milestones=[]
    )
    trainer.train()
    assert fixed_loss() < 0.8 * before


class RecordingClipDataset(YouTubeVISClipDataset):
    """Records the `(epoch, index)` of every clip it builds."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.loaded = []

    def __getitem__(self, index):
        self.loaded.append((self.epoch, index))
        return super().__getitem__(index)


class StopAt(TrainerCallback):
    """Stops training after `step` optimizer steps, as a killed job that last saved there."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


def test_killed_run_resumes_identically(tmp_path, train_videos):
    """8 clips in batches of 2: 4 steps per epoch; stop after 3 (mid-epoch), resume to 7 (past epoch and milestone)."""

    def run(output_dir, resume=None, callbacks=()):
        dataset = RecordingClipDataset(train_videos, **CLIP_SIZES, seed=5)
        args = training_arguments(output_dir, max_steps=7, save_strategy="steps", save_steps=3)
        trainer = VideoMask2FormerTrainer(
            model=tiny_model(seed=1 if resume else 0),
            args=args,
            train_dataset=dataset,
            data_collator=VideoMask2FormerDataCollator(),
            callbacks=list(callbacks),
        )
        trainer.train(resume_from_checkpoint=resume)
        losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
        return trainer, dataset.loaded, losses

    full, full_order, full_losses = run(tmp_path / "full")
    _, first_order, first_losses = run(tmp_path / "killed", callbacks=[StopAt(3)])
    checkpoint = tmp_path / "killed" / "checkpoint-3"
    assert checkpoint.is_dir() and not (tmp_path / "killed" / "checkpoint-6").exists()
    resumed, resumed_order, resumed_losses = run(tmp_path / "killed", resume=str(checkpoint))

    assert resumed.state.global_step == 7
    # The data loader fetches one batch ahead: the killed run also built (but did not train on) batch 4.
    assert first_order[: 3 * 2] + resumed_order == full_order
    assert {epoch for epoch, _ in full_order} == {0, 1}
    assert first_losses == full_losses[:3]
    assert resumed_losses == full_losses  # the resumed state's log history starts with the first 3 steps
    assert resumed.lr_scheduler.get_last_lr() == full.lr_scheduler.get_last_lr()
    assert resumed.lr_scheduler.get_last_lr()[0] == pytest.approx(1e-5)  # milestone 5 crossed after resuming
    full_state, resumed_state = full.model.state_dict(), resumed.model.state_dict()
    for name, value in full_state.items():
        torch.testing.assert_close(resumed_state[name], value, atol=1e-6, rtol=0, msg=name)
    full_optimizer, resumed_optimizer = full.optimizer.state_dict(), resumed.optimizer.state_dict()
    for key, state in full_optimizer["state"].items():
        torch.testing.assert_close(
            resumed_optimizer["state"][key]["exp_avg_sq"], state["exp_avg_sq"], atol=1e-9, rtol=1e-5
        )


TWO_PROCESS_SCRIPT = """
import json, os, sys, torch
from safetensors.torch import save_file
sys.path.insert(0, {repo!r})
from tests.test_training import CLIP_SIZES, KeepingEvaluator, small_processor, tiny_model, training_arguments
from modeling_video_mask2former.data import load_youtubevis
from modeling_video_mask2former.training import (
    VideoMask2FormerDataCollator, VideoMask2FormerTrainer, YouTubeVISClipDataset, YouTubeVISVideoDataset,
    load_training_videos,
)

torch.set_num_threads(1)
processor = small_processor()
evaluator = KeepingEvaluator({eval_annotations!r}, processor)
trainer = VideoMask2FormerTrainer(
    model=tiny_model(seed=int(os.environ["RANK"])),  # DDP starts every rank from rank 0's weights
    args=training_arguments({output!r}, max_steps=2, per_device_train_batch_size=1),
    train_dataset=YouTubeVISClipDataset(load_training_videos({annotations!r}, {frames!r}), **CLIP_SIZES),
    eval_dataset=YouTubeVISVideoDataset(load_youtubevis({eval_annotations!r}, {eval_frames!r})),
    data_collator=VideoMask2FormerDataCollator(processor),
    video_evaluator=evaluator,
)
trainer.train()
metrics = trainer.evaluate()
rank = trainer.args.process_index
state = {{name: value.contiguous() for name, value in trainer.model.state_dict().items()}}
save_file(state, os.path.join({output!r}, f"rank{{rank}}.safetensors"))
with open(os.path.join({output!r}, f"rank{{rank}}.json"), "w") as handle:
    json.dump({{"metrics": metrics, "records": evaluator.kept}}, handle)
"""


def test_two_processes_train_in_lockstep(tmp_path, synthetic):
    paths = {
        "annotations": synthetic["train"][0],
        "frames": synthetic["train"][1],
        "eval_annotations": synthetic["valid"][0],
        "eval_frames": synthetic["valid"][1],
    }
    script = tmp_path / "train_two.py"
    script.write_text(
        TWO_PROCESS_SCRIPT.format(repo=str(REPO_ROOT), output=str(tmp_path), **{k: str(v) for k, v in paths.items()})
    )
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True,
        text=True,
        timeout=600,
        env=environment,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    rank0, rank1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    initial = tiny_model(seed=0).state_dict()
    assert rank0.keys() == rank1.keys()
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name
    assert not torch.equal(rank0["class_predictor.weight"], initial["class_predictor.weight"])

    # 3 evaluation videos on 2 processes: each rank predicts 2 (one repeated), then both hold all 3 videos' records.
    results = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert results[0]["records"] == results[1]["records"]
    assert [{name: result["metrics"][f"eval_{name}"] for name in STAT_NAMES} for result in results] == [
        evaluate_ytvis(paths["eval_annotations"], [r for rs in results[0]["records"].values() for r in rs]).stats
    ] * 2
    video_ids = {str(video["id"]) for video in json.loads(Path(paths["eval_annotations"]).read_text())["videos"]}
    assert set(results[0]["records"]) == video_ids
    assert all(len(records) == 10 for records in results[0]["records"].values())
    assert {f"eval_{name}" for name in STAT_NAMES} <= results[0]["metrics"].keys()


class KeepingEvaluator(YouTubeVISEvaluator):
    """Keeps the records of the last `compute` in `kept`."""

    def compute(self):
        self.kept = dict(self.records)
        return super().compute()


def test_evaluation_reports_the_official_ap(tmp_path, synthetic):
    annotations, frames = synthetic["valid"]
    processor = small_processor()
    model = tiny_model()
    evaluator = KeepingEvaluator(annotations, processor)
    trainer = VideoMask2FormerTrainer(
        model=model,
        args=training_arguments(tmp_path),
        eval_dataset=YouTubeVISVideoDataset(load_youtubevis(annotations, frames)),
        data_collator=VideoMask2FormerDataCollator(processor),
        video_evaluator=evaluator,
    )
    metrics = trainer.evaluate()
    assert {f"eval_{name}" for name in STAT_NAMES} <= metrics.keys()
    assert all(-1 <= metrics[f"eval_{name}"] <= 1 for name in STAT_NAMES)

    # The same records and numbers from a plain loop: predict each video, post-process, write records, evaluate.
    expected = {}
    collator = VideoMask2FormerDataCollator(processor)
    model.eval()
    for example in YouTubeVISVideoDataset(load_youtubevis(annotations, frames)):
        batch = collator([example])
        with torch.no_grad():
            outputs = model(batch["pixel_values_videos"])
        tracks = processor.post_process_video_instance_segmentation(
            outputs, target_sizes=batch["original_sizes"], resized_sizes=batch["resized_sizes"]
        )
        expected[example["video_id"]] = tracks_to_ytvis_results(tracks[0], example["video_id"])
    assert evaluator.kept == expected
    stats = evaluate_ytvis(annotations, [record for records in expected.values() for record in records]).stats
    assert {name: metrics[f"eval_{name}"] for name in STAT_NAMES} == stats


def test_evaluator_scores_ground_truth_tracks_perfectly(synthetic):
    annotations = json.loads(Path(synthetic["valid"][0]).read_text())
    videos = {video["id"]: video for video in annotations["videos"]}
    records = {video_id: [] for video_id in videos}
    for annotation in annotations["annotations"]:
        video = videos[annotation["video_id"]]
        segmentations = []
        for segmentation in annotation["segmentations"]:
            rle = (
                None if segmentation is None else mask_utils.frPyObjects(segmentation, video["height"], video["width"])
            )
            segmentations.append(None if rle is None else {"size": rle["size"], "counts": rle["counts"].decode()})
        record = {"video_id": video["id"], "score": 1.0, "category_id": annotation["category_id"]}
        records[video["id"]].append({**record, "segmentations": segmentations})
    evaluator = YouTubeVISEvaluator(annotations, small_processor())
    evaluator.add(list(records.items()))
    assert evaluator.num_videos == len(videos)
    stats = evaluator.compute()
    assert list(stats) == list(STAT_NAMES)
    assert stats["AP"] == stats["AR100"] == 1.0
    assert evaluator.num_videos == 0
    assert evaluator.label_to_category_id == [1, 2, 3, 4]


def build_train_parser() -> argparse.ArgumentParser:
    """The parser `video-mask2former train` gets from the CLI dispatcher."""
    parser = argparse.ArgumentParser(prog="video-mask2former")
    subparser = parser.add_subparsers(dest="command", required=True).add_parser("train", help=command.HELP)
    command.add_arguments(subparser)
    return parser


def test_command_trains_resumes_and_evaluates(tmp_path, synthetic, capsys):
    config_file = tmp_path / "tiny" / "config.json"
    tiny_model().config.save_pretrained(config_file.parent)
    output = tmp_path / "run"
    base = [
        "train",
        "--annotations", str(synthetic["train"][0]),
        "--frames", str(synthetic["train"][1]),
        "--config", str(config_file),
        "--output-dir", str(output),
        "--min-sizes", "64",
        "--max-size", "128",
        "--dataloader_num_workers", "0",
        "--save_steps", "2",
        "--logging_steps", "1",
        "--disable_tqdm", "true",
    ]  # fmt: skip
    args = build_train_parser().parse_args(base + ["--max-steps", "2", "--learning_rate", "3e-4"])
    assert (args.learning_rate, args.weight_decay, args.max_grad_norm) == (3e-4, 0.05, 0.01)
    assert command.run(args) == 0
    assert (output / "checkpoint-2").is_dir() and (output / "video_preprocessor_config.json").is_file()

    evaluation = ["--eval-annotations", str(synthetic["valid"][0]), "--eval-frames", str(synthetic["valid"][1])]
    args = build_train_parser().parse_args(base + evaluation + ["--max-steps", "3", "--resume-from-checkpoint"])
    assert command.run(args) == 0
    state = json.loads((output / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3]
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {f"eval_{name}" for name in STAT_NAMES} <= metrics.keys()
    loaded = VideoMask2FormerForVideoInstanceSegmentation.from_pretrained(output)
    assert loaded.config.id2label[0] == "red_ellipse"


def test_command_fails_fast_on_bad_data(tmp_path, synthetic, capsys):
    annotations, frames = synthetic["train"]
    data = json.loads(Path(annotations).read_text())
    data["annotations"][2]["category_id"] = 99
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(data))
    args = build_train_parser().parse_args(
        [
            "train",
            "--annotations",
            str(broken),
            "--frames",
            str(frames),
            "--config",
            "ytvis_2019_R50",
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    assert command.run(args) == 2
    error = capsys.readouterr().err
    video_id, annotation_id = data["annotations"][2]["video_id"], data["annotations"][2]["id"]
    assert str(broken) in error and f"video {video_id}" in error and f"annotation {annotation_id}" in error
    assert "category_id" in error

    args = build_train_parser().parse_args(
        ["train", "--annotations", str(annotations), "--frames", str(frames), "--config", "ytvis_2019_R50",
         "--output-dir", str(tmp_path / "out"), "--resume-from-checkpoint"]
    )  # fmt: skip
    assert command.run(args) == 2
    assert "no checkpoint" in capsys.readouterr().err
