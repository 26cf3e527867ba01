"""Model cards (`README.md` with Hub metadata) for converted checkpoints, the demo model and other model folders.

The metadata (`ModelCardData`) names the library, the license, the datasets and, where a result is known, a
`model-index` of `EvalResult`s. The Hub has no pipeline tag for video segmentation: cards use `image-segmentation`,
the nearest one, and say so.
"""

from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import PreTrainedConfig


if TYPE_CHECKING:  # the conversion package imports this module
    from .conversion.presets import Preset


MODEL_ID_PLACEHOLDER = "path/to/this/model"  # usage code names it until `video-mask2former push` names the repo
PIPELINE_TAG = "image-segmentation"
TAGS = ["video-instance-segmentation", "mask2former", "video-mask2former", "vision", "custom_code"]
PAPER_URL = "https://arxiv.org/abs/2112.10764"
MODEL_ZOO_URL = "https://github.com/facebookresearch/Mask2Former/blob/main/MODEL_ZOO.md"
CITATION = """@article{cheng2021mask2former,
  title={Mask2Former for Video Instance Segmentation},
  author={Bowen Cheng and Anwesa Choudhuri and Ishan Misra and Alexander Kirillov and Rohit Girdhar and
          Alexander G. Schwing},
  journal={arXiv preprint arXiv:2112.10764},
  year={2021}
}"""
# The paper's Tables 1 and 2 (val, median of 5 runs; AP as in MODEL_ZOO.md): preset -> (AP50, AP75).
PAPER_AP50_AP75 = {
    "ytvis_2019_R50": (68.0, 50.0),
    "ytvis_2019_R101": (72.8, 54.2),
    "ytvis_2019_swin_tiny": (75.0, 56.5),
    "ytvis_2019_swin_small": (79.0, 58.8),
    "ytvis_2019_swin_base": (84.3, 67.2),
    "ytvis_2019_swin_large": (84.4, 67.0),
    "ytvis_2021_R50": (60.9, 41.8),
    "ytvis_2021_R101": (65.9, 45.8),
    "ytvis_2021_swin_tiny": (68.7, 50.7),
    "ytvis_2021_swin_small": (77.2, 52.0),
    "ytvis_2021_swin_base": (76.5, 54.2),
    "ytvis_2021_swin_large": (76.4, 57.2),
}


@dataclass
class DemoTraining:
    """How the demo model was trained (`benchmarks/train_demo_model.py`) and its AP/AR (fractions)."""

    steps: int
    batch_size: int
    learning_rate: float
    min_sizes: list[int]
    train_videos: int
    train_seed: int
    eval_videos: int
    eval_seed: int
    demo_videos: int
    demo_seed: int
    minutes: float
    threads: int
    first_loss: float
    last_loss: float
    held_out: dict[str, float]
    demo: dict[str, float]


def _package_version() -> str:
    try:
        return version("video-mask2former")
    except PackageNotFoundError:
        return "unknown"


def _usage(model_id: str) -> str:
    return f"""## How to use

The model and its video processor are custom code (this repository holds it): pass `trust_remote_code=True`, or
import `modeling_video_mask2former` first (the `video-mask2former` package) to use them without it.

```python
import torch
from transformers import AutoModel, AutoVideoProcessor

processor = AutoVideoProcessor.from_pretrained("{model_id}", trust_remote_code=True)
model = AutoModel.from_pretrained("{model_id}", trust_remote_code=True).eval()

inputs = processor(videos="video.mp4", return_tensors="pt")  # a file, a frame folder, or (T, H, W, 3) frames
with torch.no_grad():
    outputs = model(pixel_values_videos=inputs["pixel_values_videos"])
(tracks,) = processor.post_process_video_instance_segmentation(
    outputs, target_sizes=inputs["original_sizes"], resized_sizes=inputs["resized_sizes"], top_k=10
)
for track in tracks:  # one object over the whole video: score, 0-based label, (T, H, W) boolean masks
    print(model.config.id2label[track["label"]], round(track["score"], 3), tuple(track["masks"].shape))
```

The `video-instance-segmentation` pipeline (custom code, registered in `config.json`) does the same:

```python
from transformers import pipeline

segmenter = pipeline(model="{model_id}", trust_remote_code=True)
tracks = segmenter("video.mp4")  # [{{"score", "label", "label_name", "query_index", "masks"}}, ...]
```

From the shell, with the `video-mask2former` package installed, results in the YouTube-VIS format and an overlay
video (`--window 36` bounds the memory on long videos):

```bash
video-mask2former predict --model {model_id} --video video.mp4 --output-dir predictions
```

**Pipeline tag.** The Hub has no pipeline tag for video segmentation; this card uses `{PIPELINE_TAG}`, the nearest
one. The model takes a whole video and returns tracks (one mask per frame per object), so the Hub's image
segmentation widget cannot run it.
"""


def _model_details(config: PreTrainedConfig) -> str:
    labels = ", ".join(config.id2label[label] for label in range(config.num_labels))
    return f"""## Model

Mask2Former for video instance segmentation ([Cheng et al., 2021]({PAPER_URL})): the image Mask2Former (backbone,
multi-scale deformable-attention pixel decoder, masked-attention transformer decoder) with masked attention over the
spatio-temporal volume, a temporal position encoding and 3D mask prediction, so that each query segments and tracks
one object through the whole video.

- backbone: `{config.backbone_config.model_type}`
- decoder: {config.decoder_layers} layers, {config.num_queries} queries, hidden size {config.hidden_dim}
- test time: shortest edge {config.test_min_size}, longest edge at most {config.test_max_size}, the \
{config.test_top_k} best (query, class) pairs kept per video
- {config.num_labels} classes: {labels}
"""


def _citation() -> str:
    return f"""## Citation

```bibtex
{CITATION}
```
"""


def _results_table(rows: list[tuple[str, float]]) -> str:
    header = "| " + " | ".join(name for name, _ in rows) + " |\n"
    return header + "|" + "---|" * len(rows) + "\n| " + " | ".join(f"{value:.1f}" for _, value in rows) + " |\n"


def _card(data: ModelCardData, sections: list[str]) -> ModelCard:
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(sections))


def conversion_model_card(
    config: PreTrainedConfig, checkpoint: str, preset: "Preset | None" = None, model_id: str = MODEL_ID_PLACEHOLDER
) -> ModelCard:
    """
    The card of a converted original checkpoint (`checkpoint`: its URL or file name). With a model-zoo `preset`: the
    CC BY-NC 4.0 license of the official weights and a `model-index` with the reported AP (and the paper's AP50/AP75).
    """
    if preset is None:
        title = "Video Mask2Former (converted)"
        data = ModelCardData(
            license="other", library_name="transformers", pipeline_tag=PIPELINE_TAG, tags=TAGS, model_name=title
        )
        results = "No reported result is recorded for this checkpoint."
        license_text = "The license of the source checkpoint applies."
        source = f"`{checkpoint}` with a custom config"
        command = f"video-mask2former convert --checkpoint {checkpoint} --config <config.yaml>"
    else:
        dataset = preset.dataset.removesuffix(" val").removesuffix(" val2017")
        title = f"Video Mask2Former {preset.backbone}, {dataset}"
        coco = preset.name.startswith("coco")
        dataset_type = "coco" if coco else dataset.lower().replace(" ", "-")
        metrics = [("AP", preset.reported_ap)]
        if coco:
            source_name, source_url = "Mask2Former MODEL_ZOO.md", MODEL_ZOO_URL
        else:  # the model zoo's AP is the paper's
            metrics += zip(("AP50", "AP75"), PAPER_AP50_AP75[preset.name])
            source_name, source_url = "Cheng et al., 2021, Tables 1 and 2", PAPER_URL
        eval_results = [
            EvalResult(
                task_type="instance-segmentation" if coco else "video-instance-segmentation",
                task_name="Instance Segmentation" if coco else "Video Instance Segmentation",
                dataset_type=dataset_type,
                dataset_name=dataset,
                dataset_split="val2017" if coco else "validation",
                metric_type=name.lower(),
                metric_name=f"mask {name}",
                metric_value=value,
                source_name=source_name,
                source_url=source_url,
            )
            for name, value in metrics
        ]
        data = ModelCardData(
            license="cc-by-nc-4.0",
            library_name="transformers",
            pipeline_tag=PIPELINE_TAG,
            tags=TAGS + (["coco"] if coco else ["youtube-vis"]),
            datasets=[dataset_type],
            model_name=title,
            eval_results=eval_results,
        )
        results = (
            f"Mask AP of the original model on {preset.dataset}, as reported by [{source_name}]({source_url}) (not "
            f"re-measured here):\n\n{_results_table([(f'mask {name}', value) for name, value in metrics])}"
        )
        if coco:
            results += (
                "\nThis is the COCO image model in the video architecture, the initialisation the original video "
                "training starts from; for a new label set, load it with `id2label={...}` and "
                "`ignore_mismatched_sizes=True` (the original also re-initialises the class head).\n"
            )
        else:
            results += (
                "\nThe paper reports the median of 5 runs. The YouTube-VIS validation ground truth is private: the "
                "numbers come from the CodaLab server (`video-mask2former infer --zip` writes the submission).\n"
            )
        license_text = (
            "The original model-zoo weights are released by Meta under CC BY-NC 4.0 (non-commercial use); this "
            "conversion keeps that license."
        )
        source = f"model-zoo entry `{preset.model_id}`, config `configs/{preset.config}`, checkpoint {checkpoint}"
        command = f"video-mask2former convert --preset {preset.name} --output-dir <folder>"
    provenance = f"""## Conversion

Converted from the original detectron2 checkpoint ({source}) with `{command}` (video-mask2former
{_package_version()}). Every tensor of the checkpoint is mapped by a declarative rename table and checked for shape;
the written folder is reloaded and compared tensor by tensor. The port is numerically identical to the original
implementation: the ResNet-50 model's outputs are bit-identical, Swin's mask logits within 2.6e-5.
"""
    sections = [
        f"# {title}\n",
        _model_details(config),
        f"## Results\n\n{results}",
        _usage(model_id),
        provenance,
        f"## License\n\n{license_text}\n",
        _citation(),
    ]
    return _card(data, sections)


def demo_model_card(
    config: PreTrainedConfig, training: DemoTraining, model_id: str = MODEL_ID_PLACEHOLDER
) -> ModelCard:
    """The card of the demo model: trained on synthetic videos of coloured shapes; its held-out and demo AP."""
    title = "Video Mask2Former demo model (synthetic shapes)"

    eval_results = [
        EvalResult(
            task_type="video-instance-segmentation",
            task_name="Video Instance Segmentation",
            dataset_type="synthetic-youtube-vis-shapes",
            dataset_name="Synthetic YouTube-VIS shapes (held out)",
            dataset_split="validation",
            dataset_args={"seed": training.eval_seed, "num_videos": training.eval_videos},
            metric_type=name.lower(),
            metric_name=f"mask {name}",
            metric_value=round(100 * training.held_out[name], 1),
        )
        for name in ("AP", "AP50", "AP75")
    ]
    data = ModelCardData(
        license="apache-2.0",
        library_name="transformers",
        pipeline_tag=PIPELINE_TAG,
        tags=TAGS,
        model_name=title,
        eval_results=eval_results,
    )
    sizes = "/".join(str(size) for size in training.min_sizes)
    table = "| videos | seed | mask AP | AP50 | AP75 |\n|---|---|---|---|---|\n"
    for name, count, seed, stats in (
        ("held out", training.eval_videos, training.eval_seed, training.held_out),
        ("the demo's", training.demo_videos, training.demo_seed, training.demo),
    ):
        numbers = " | ".join(f"{100 * stats[key]:.1f}" for key in ("AP", "AP50", "AP75"))
        table += f"| {count} ({name}) | {seed} | {numbers} |\n"
    sections = [
        f"# {title}\n",
        (
            "A small Video Mask2Former shipped inside the `video-mask2former` package for `video-mask2former demo`, "
            "which runs offline in about a minute on a CPU. It segments and tracks synthetic coloured shapes, nothing "
            "else: it shows the whole pipeline (video in; tracks, YouTube-VIS results, overlay video and the official "
            "AP out), not the paper's accuracy.\n"
        ),
        _model_details(config),
        f"""## Training

Trained from random initialisation by `python benchmarks/train_demo_model.py`, which runs `video-mask2former train`
with the original recipe (AdamW, backbone learning rate x0.1, learning rate x0.1 at 2/3 of the steps, full-model
gradient clipping at 0.01, 2-frame clips), except for the learning rate, raised to {training.learning_rate:g} as
nothing is pre-trained.

- data: {training.train_videos} synthetic YouTube-VIS videos from `generate_synthetic_ytvis` (seed \
{training.train_seed}); each class has its own shape and colour; objects move, occlude each other, enter and leave
- {training.steps} steps of {training.batch_size} clips, shortest edge drawn from {sizes}
- {training.minutes} minutes on a CPU with `torch.set_num_threads({training.threads})`; the loss went from \
{training.first_loss} to {training.last_loss}

## Results

The official YouTube-VIS AP (all {config.test_top_k} tracks per video) on synthetic videos of seeds never used for
training:

{table}
A known weakness: two objects of the same class in one video are often segmented by one query, as one track.
""",
        _usage(model_id),
        "## License\n\nApache-2.0, as the `video-mask2former` code; the training data is generated.\n",
        _citation(),
    ]
    return _card(data, sections)


def folder_model_card(
    config: PreTrainedConfig, license: str = "other", model_id: str = MODEL_ID_PLACEHOLDER
) -> ModelCard:
    """A card for a model folder that has none (e.g. a fine-tuned model): metadata, model details and usage."""
    title = "Video Mask2Former"
    data = ModelCardData(
        license=license, library_name="transformers", pipeline_tag=PIPELINE_TAG, tags=TAGS, model_name=title
    )
    return _card(data, [f"# {title}\n", _model_details(config), _usage(model_id), _citation()])


def set_model_id(card: ModelCard, model_id: str) -> ModelCard:
    """The card with its usage code naming `model_id` (a Hub repo id) instead of `MODEL_ID_PLACEHOLDER`."""
    return ModelCard(str(card).replace(MODEL_ID_PLACEHOLDER, model_id))


__all__ = [
    "CITATION",
    "MODEL_ID_PLACEHOLDER",
    "PIPELINE_TAG",
    "DemoTraining",
    "conversion_model_card",
    "demo_model_card",
    "folder_model_card",
    "set_model_id",
]
