"""Inference over a whole YouTubeVIS/OVIS split for the evaluation servers: resumable, optionally sharded.

Videos are run one at a time (only that video's frames are decoded). Each video's result records are written to
`<output_dir>/partial/<video_id>.json` (atomically), so an interrupted run skips the videos already done; the final
`results.json` (and `submission.zip`) is written atomically once every video has results. Under `accelerate launch`
or `torchrun`, process `p` of `n` takes the videos `i % n == p` and the main process merges all journals.
"""

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pyarrow.compute as pc
import torch
from accelerate import PartialState
from datasets import Dataset, load_dataset
from tqdm.auto import tqdm
from transformers import AutoModel, AutoVideoProcessor

from ..data.categories import CATEGORY_FILES, CategoryMapping
from ..data.youtubevis import load_youtubevis
from ..modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation
from ..results import tracks_to_ytvis_results
from ..video_processing_video_mask2former import VideoMask2FormerVideoProcessor
from .records import load_ground_truth, load_predictions, read_json
from .submission import write_submission


RESULTS_FILE_NAME = "results.json"
SUBMISSION_FILE_NAME = "submission.zip"
JOURNAL_DIR_NAME = "partial"
RUN_FILE_NAME = "run.json"
# Processes finish their shards at different times and then wait for each other at a barrier.
BARRIER_TIMEOUT = timedelta(hours=3)


@dataclass
class VideoSplit:
    """
    The videos of a split (one row per video, the layout of `load_youtubevis`) and its categories (dataset ids and
    names).
    """

    videos: Dataset
    categories: CategoryMapping

    @property
    def video_ids(self) -> list[int]:
        return list(self.videos["video_id"])

    @property
    def has_annotations(self) -> bool:
        tracks = self.videos.select_columns(["annotations"]).with_format("arrow")["annotations"]
        return pc.sum(pc.list_value_length(tracks)).as_py() > 0

    def ground_truth(self, with_annotations: bool = False) -> dict:
        """The split as a YouTubeVIS json dict: videos and categories, and the annotations `with_annotations`."""
        columns = ["video_id", "height", "width", "length"] + (["annotations"] if with_annotations else [])
        data = {
            "videos": [],
            "categories": [
                {"id": category_id, "name": name}
                for category_id, name in zip(self.categories.category_ids, self.categories.names)
            ],
        }
        if with_annotations:
            data["annotations"] = []
        for row in self.videos.select_columns(columns):
            data["videos"].append(
                {"id": row["video_id"], "height": row["height"], "width": row["width"], "length": row["length"]}
            )
            for track in row.get("annotations", []):
                data["annotations"].append(
                    {
                        "id": track["id"],
                        "video_id": row["video_id"],
                        "category_id": track["category_id"],
                        "segmentations": track["segmentations"],
                        "areas": track["areas"],
                        "iscrowd": track["iscrowd"],
                    }
                )
        return data


def _parquet_categories(videos: Dataset) -> CategoryMapping:
    """
    Parquet shards keep the category names (`ClassLabel`) but not their ids: these come from the known dataset with
    the same names, else from the annotations, which must then name every category.
    """
    names = videos.features["annotations"].feature["category"].names
    for dataset_name in CATEGORY_FILES:
        known = CategoryMapping.from_dataset(dataset_name)
        if list(known.names) == names:
            return known
    tracks = videos.select_columns(["annotations"]).with_format("arrow")["annotations"].combine_chunks().flatten()
    pairs = set(zip(tracks.field("category").to_pylist(), tracks.field("category_id").to_pylist()))
    ids = dict(pairs)
    if len(ids) != len(pairs):
        raise ValueError("The Parquet split's annotations give one category several category ids.")
    unknown = [name for label, name in enumerate(names) if label not in ids]
    if unknown:
        raise ValueError(
            f"The Parquet split does not tell the category ids of {unknown} (its categories are not those of "
            f"{', '.join(CATEGORY_FILES)} and no annotation uses them): use --annotations and --frames instead."
        )
    return CategoryMapping.from_categories([{"id": ids[label], "name": name} for label, name in enumerate(names)])


def load_split(
    annotations: str | os.PathLike | None = None,
    frames_dir: str | os.PathLike | None = None,
    parquet_dir: str | os.PathLike | None = None,
) -> VideoSplit:
    """
    A split from a YouTubeVIS annotation json (valid/test files have no annotations: fine) and its frame folder, or
    from a folder of the Parquet shards of one split (`write_parquet_shards`).
    """
    if parquet_dir is not None:
        files = sorted(Path(parquet_dir).glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"No .parquet files in {parquet_dir}.")
        splits = sorted({file.name.rsplit("-", 3)[0] for file in files})  # <split>-00000-of-00004.parquet
        if len(splits) > 1:
            raise ValueError(f"{parquet_dir} holds the shards of several splits ({', '.join(splits)}): give one.")
        videos = load_dataset("parquet", data_files=[str(file) for file in files], split="train")
        return VideoSplit(videos=videos, categories=_parquet_categories(videos))
    if annotations is None or frames_dir is None:
        raise ValueError("Give an annotation json and its frame folder, or a folder of Parquet shards.")
    videos = load_youtubevis(annotations, frames_dir)
    categories = CategoryMapping.from_categories(read_json(annotations, "annotations")["categories"])
    return VideoSplit(videos=videos, categories=categories)


def label_to_category_ids(label_names: Mapping[int, str], categories: CategoryMapping) -> dict[int, int]:
    """The dataset category id of each model label, matching the label names to the category names."""
    ids = dict(zip(categories.names, categories.category_ids))
    unknown = sorted({name for name in label_names.values() if name not in ids})
    if unknown:
        raise ValueError(
            f"The model's labels {unknown} are not categories of the split (whose categories are "
            f"{list(categories.names)}): check that the model was trained on this dataset, or name the model's label "
            "set with --dataset-categories."
        )
    return {int(label): ids[name] for label, name in label_names.items()}


def load_model_and_processor(
    model_name_or_path: str,
    device: str | torch.device,
    dtype: torch.dtype,
    min_size: int | None = None,
    compile: bool = False,
) -> tuple[VideoMask2FormerForVideoInstanceSegmentation, VideoMask2FormerVideoProcessor]:
    """
    Loads the model and its video processor (built from the config's test sizes where the folder has none);
    `min_size` overrides the shortest edge. With `compile`, the model's forward goes through `torch.compile` with
    dynamic shapes (clips of any length and size reuse one compiled graph where they can).
    """
    if os.path.isdir(model_name_or_path):
        model_name_or_path = os.path.abspath(model_name_or_path)
    model = AutoModel.from_pretrained(model_name_or_path, dtype=dtype).to(device).eval()
    try:
        video_processor = AutoVideoProcessor.from_pretrained(model_name_or_path)
    except OSError:
        video_processor = VideoMask2FormerVideoProcessor(
            size={"shortest_edge": model.config.test_min_size, "longest_edge": model.config.test_max_size}
        )
    if min_size is not None:
        video_processor.size = {"shortest_edge": min_size, "longest_edge": video_processor.size.longest_edge}
    if compile:
        model.forward = torch.compile(model.forward, dynamic=True)
    return model, video_processor


def segment_video(
    model: VideoMask2FormerForVideoInstanceSegmentation,
    video_processor: VideoMask2FormerVideoProcessor,
    frames: Sequence,
    video_id: int,
    height: int,
    width: int,
    top_k: int,
    label_to_category_id: Mapping[int, int],
) -> list[dict]:
    """One video's YouTubeVIS result records, masks at the split's `(height, width)` as the original writes them."""
    inputs = video_processor(videos=[frames], return_tensors="pt")
    with torch.inference_mode():
        outputs = model(pixel_values_videos=inputs["pixel_values_videos"].to(model.device, model.dtype))
    tracks = video_processor.post_process_video_instance_segmentation(
        outputs, target_sizes=[(height, width)], resized_sizes=inputs["resized_sizes"], top_k=top_k
    )[0]
    return tracks_to_ytvis_results(tracks, video_id, label_to_category_id)


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Calls `write` on a temporary file next to `path`, then renames it to `path`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(temporary)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _write_json(path: Path, data) -> None:
    def write(temporary: Path) -> None:
        with open(temporary, "w") as handle:
            json.dump(data, handle)
            handle.flush()
            os.fsync(handle.fileno())

    _write_atomically(path, write)


def _prepare_journal(journal: Path, run: dict) -> None:
    """Creates the journal folder, or checks that the one there is from the same run; removes stale temporaries."""
    journal.mkdir(parents=True, exist_ok=True)
    for name in ("*", RESULTS_FILE_NAME, SUBMISSION_FILE_NAME):
        for stale in (journal if name == "*" else journal.parent).glob(f".{name}.*.tmp"):
            stale.unlink()
    run_file = journal / RUN_FILE_NAME
    if not run_file.exists():
        _write_json(run_file, run)
        return
    previous = json.loads(run_file.read_text())
    changed = sorted(key for key in run.keys() | previous.keys() if run.get(key) != previous.get(key))
    if changed:
        raise ValueError(
            f"{journal} holds the results of another run (different {', '.join(changed)}): remove it to start over, "
            "or choose another --output-dir."
        )


def infer_split(
    model: VideoMask2FormerForVideoInstanceSegmentation,
    video_processor: VideoMask2FormerVideoProcessor,
    split: VideoSplit,
    output_dir: str | os.PathLike,
    label_to_category_id: Mapping[int, int] | None = None,
    top_k: int | None = None,
    write_zip: bool = False,
    state: PartialState | None = None,
) -> list[dict] | None:
    """
    Runs the model on every video of `split` and writes `<output_dir>/results.json` (and `submission.zip` with
    `write_zip`). Videos with results in the journal `<output_dir>/partial/` are skipped.

    Args:
        label_to_category_id (`Mapping[int, int]`, *optional*):
            Dataset category id of each label. Defaults to matching `model.config.id2label` to the split's category
            names.
        top_k (`int`, *optional*):
            Tracks kept per video. Defaults to `model.config.test_top_k`.
        state (`PartialState`, *optional*):
            The processes to shard the videos over (`accelerate launch` / `torchrun`). Defaults to `PartialState()`.

    Returns:
        `list[dict]`: on the main process, the result records of all videos in split order; `None` on the others.
    """
    state = state if state is not None else PartialState(timeout=BARRIER_TIMEOUT)
    if label_to_category_id is None:
        label_to_category_id = label_to_category_ids(model.config.id2label, split.categories)
    missing = sorted(set(range(model.config.num_labels)) - set(label_to_category_id))
    unknown = sorted(set(label_to_category_id.values()) - set(split.categories.category_ids))
    if missing or unknown:
        raise ValueError(
            f"label_to_category_id gives no category id to labels {missing} and unknown category ids {unknown}."
        )
    top_k = top_k or model.config.test_top_k
    output_dir = Path(output_dir)
    journal = output_dir / JOURNAL_DIR_NAME
    video_ids = split.video_ids
    run = {
        "model": model.name_or_path,
        "dtype": str(model.dtype),
        "video_processor": json.loads(video_processor.to_json_string()),
        "top_k": top_k,
        "label_to_category_id": {str(label): int(category_id) for label, category_id in label_to_category_id.items()},
        "video_ids": video_ids,
    }
    if state.is_main_process:
        _prepare_journal(journal, run)
    state.wait_for_everyone()

    indices = range(state.process_index, len(video_ids), state.num_processes)
    todo = [index for index in indices if not (journal / f"{video_ids[index]}.json").exists()]
    videos = split.videos.select_columns(["video_id", "frames", "height", "width"])
    progress = tqdm(
        todo, total=len(indices), initial=len(indices) - len(todo), unit="video", disable=not state.is_main_process
    )
    for index in progress:
        video = videos[index]
        records = segment_video(
            model,
            video_processor,
            video["frames"],
            video["video_id"],
            video["height"],
            video["width"],
            top_k,
            label_to_category_id,
        )
        _write_json(journal / f"{video['video_id']}.json", records)
    state.wait_for_everyone()
    if not state.is_main_process:
        return None

    records = [record for video_id in video_ids for record in json.loads((journal / f"{video_id}.json").read_text())]
    ground_truth = load_ground_truth(split.ground_truth(), require_annotations=False)
    load_predictions(records, ground_truth)
    _write_json(output_dir / RESULTS_FILE_NAME, records)
    if write_zip:
        _write_atomically(
            output_dir / SUBMISSION_FILE_NAME, lambda temporary: write_submission(records, temporary, ground_truth)
        )
    return records


__all__ = [
    "VideoSplit",
    "infer_split",
    "label_to_category_ids",
    "load_model_and_processor",
    "load_split",
    "segment_video",
]
