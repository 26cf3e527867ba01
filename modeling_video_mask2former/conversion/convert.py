"""Convert an original Video Mask2Former checkpoint and config into a `save_pretrained` folder."""

import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..configuration_video_mask2former import VideoMask2FormerConfig
from ..model_card import conversion_model_card
from ..modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation
from ..publishing import save_model_folder
from ..video_processing_video_mask2former import VideoMask2FormerVideoProcessor
from .checkpoint import load_original_state_dict
from .detectron2_config import config_from_detectron2, load_detectron2_config, video_processor_kwargs_from_detectron2
from .presets import PRESETS, Preset
from .rename import model_only_reason, rename_state_dict


class ConversionError(ValueError):
    """The checkpoint does not fit the model built from the config."""


@dataclass
class ConversionReport:
    """What a conversion did with every key."""

    config: VideoMask2FormerConfig
    converted: dict[str, str] = field(default_factory=dict)  # our key -> original key
    dropped: dict[str, str] = field(default_factory=dict)  # original key -> why it is not used
    model_only: dict[str, str] = field(default_factory=dict)  # our key the checkpoint lacks -> why that is fine
    checkpoint: str | None = None
    preset: Preset | None = None
    video_processor_kwargs: dict[str, Any] = field(default_factory=dict)
    output_dir: Path | None = None

    def summary(self) -> str:
        """A few human-readable lines: counts, and the dropped / model-only keys grouped by reason."""
        lines = [
            f"converted {len(set(self.converted.values()))} checkpoint tensors to {len(self.converted)} model tensors"
        ]
        for verb, keys in (("dropped checkpoint key", self.dropped), ("kept the model's own", self.model_only)):
            by_reason = {}
            for key, reason in keys.items():
                by_reason.setdefault(reason, []).append(key)
            for reason, group in by_reason.items():
                more = f" and {len(group) - 1} more" if len(group) > 1 else ""
                lines.append(f"  {verb} {group[0]}{more}: {reason}")
        if self.output_dir is not None:
            lines.append(f"wrote {self.output_dir}")
        return "\n".join(lines)


def _first(items: list[str], limit: int = 5) -> str:
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit} more)" if len(items) > limit else "")


def map_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: torch.nn.Module, strict: bool = True
) -> tuple[dict[str, torch.Tensor], ConversionReport]:
    """
    Rename an original state dict to `model`'s keys and check it covers every model key with the right shape. Works on
    a model on the meta device (shapes only). Raises `ConversionError` naming missing keys and shape mismatches, and,
    when `strict`, checkpoint keys the model has no place for (otherwise these are reported as dropped).
    """
    renamed = rename_state_dict(state_dict)
    expected = model.state_dict()
    buffers = dict(model.named_buffers())
    report = ConversionReport(config=model.config, dropped=dict(renamed.dropped))

    unused = {key: "not used: no conversion rule matches it" for key in renamed.unmatched}
    mismatched = {}  # our key -> description
    for key, tensor in renamed.tensors.items():
        source = renamed.sources[key]
        if key not in expected:
            unused[source] = f"not used: the model has no {key}"
        elif tensor.shape != expected[key].shape:
            mismatched[key] = (
                f"{source} -> {key}: checkpoint {tuple(tensor.shape)} vs model {tuple(expected[key].shape)}"
            )
        else:
            report.converted[key] = source
    for key, (source, tensor) in renamed.recomputed.items():
        buffer = buffers.get(key)
        if buffer is None:
            unused[source] = f"not used: the model has no {key}"
        elif buffer.numel() != tensor.numel():
            mismatched[key] = f"{source} -> {key}: checkpoint {tuple(tensor.shape)} vs model {tuple(buffer.shape)}"
        elif buffer.is_meta:
            report.dropped[source] = "recomputed by the model"
        elif torch.equal(buffer.flatten(), tensor.flatten().to(buffer.dtype)):
            report.dropped[source] = "recomputed by the model (checked equal)"
        else:
            raise ConversionError(f"{source} differs from the model's recomputed {key}")

    missing = []
    for key in expected:
        if key in report.converted or key in mismatched:
            continue
        reason = model_only_reason(key)
        if reason is None:
            missing.append(key)
        else:
            report.model_only[key] = reason

    problems = []
    if missing:
        problems.append(f"{len(missing)} model keys missing from the checkpoint: {_first(missing)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches: {_first(list(mismatched.values()))}")
    if strict and unused:
        problems.append(f"{len(unused)} checkpoint keys without a place in the model: {_first(list(unused))}")
    if problems:
        raise ConversionError("the checkpoint does not fit the model built from the config: " + "; ".join(problems))
    report.dropped.update(unused)
    return {key: renamed.tensors[key] for key in report.converted}, report


def convert_model(
    checkpoint: str | os.PathLike | None,
    config: str | os.PathLike,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    strict: bool = True,
) -> tuple[VideoMask2FormerForVideoInstanceSegmentation, ConversionReport]:
    """
    Build `VideoMask2FormerForVideoInstanceSegmentation` from an original config (preset name or yaml path, plus
    dotted-key `overrides`) and load an original checkpoint (path or URL; `None` takes the preset's model-zoo URL) into
    it. Returns the model in eval mode and the report.
    """
    preset = PRESETS.get(str(config))
    original = load_detectron2_config(preset.config_path if preset else config, overrides)
    model_config = config_from_detectron2(original)
    video_processor_kwargs = video_processor_kwargs_from_detectron2(original)
    if checkpoint is None:
        if preset is None:
            raise ValueError("a checkpoint is required unless a preset (with its model-zoo URL) is given")
        checkpoint = preset.checkpoint_url

    state_dict = load_original_state_dict(checkpoint)
    model = VideoMask2FormerForVideoInstanceSegmentation(model_config)
    tensors, report = map_state_dict(state_dict, model, strict=strict)
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if unexpected or set(missing) - report.model_only.keys():
        raise ConversionError(f"loading left missing={missing} unexpected={unexpected}")
    report.checkpoint, report.preset, report.video_processor_kwargs = str(checkpoint), preset, video_processor_kwargs
    return model.eval(), report


def _model_card(report: ConversionReport) -> str:
    """The card (`model_card.conversion_model_card`), naming a local checkpoint by its file name only."""
    source = report.checkpoint
    if not source.startswith(("http://", "https://")):
        source = report.preset.checkpoint_url if report.preset is not None else Path(source).name
    return str(conversion_model_card(report.config, source, report.preset))


def _ensure_auto_map() -> None:
    """Make `save_pretrained` write `auto_map` (the package registers the classes on import; do it if it did not)."""
    if VideoMask2FormerConfig._auto_class is None:
        VideoMask2FormerConfig.register_for_auto_class()
    if VideoMask2FormerForVideoInstanceSegmentation._auto_class is None:
        VideoMask2FormerForVideoInstanceSegmentation.register_for_auto_class("AutoModel")
    if VideoMask2FormerVideoProcessor._auto_class is None:
        VideoMask2FormerVideoProcessor.register_for_auto_class("AutoVideoProcessor")


def _check_round_trip(model: torch.nn.Module, folder: Path) -> None:
    reloaded = VideoMask2FormerForVideoInstanceSegmentation.from_pretrained(folder)
    ours, theirs = model.state_dict(), reloaded.state_dict()
    if ours.keys() != theirs.keys():
        raise ConversionError(f"the saved folder reloads with other keys: {sorted(ours.keys() ^ theirs.keys())[:5]}")
    changed = [key for key in ours if not torch.equal(ours[key], theirs[key])]
    if changed:
        raise ConversionError(f"the saved folder reloads with other values for {_first(changed)}")


def convert_checkpoint(
    checkpoint: str | os.PathLike | None,
    config: str | os.PathLike,
    output_dir: str | os.PathLike,
    overrides: Mapping[str, Any] | Iterable[str] | None = None,
    verify: bool = True,
    *,
    strict: bool = True,
    overwrite: bool = False,
) -> ConversionReport:
    """
    Convert an original checkpoint (path or URL; `None` with a preset takes its model-zoo URL) with its config (preset
    name or yaml path, plus dotted-key `overrides`) into `output_dir`: model weights and config with `auto_map`, video
    processor config and a model card. The folder is written next to its destination and renamed into place at the
    end, so a failed conversion leaves nothing behind. With `verify`, the written folder is reloaded and every tensor
    compared exactly first.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"{output_dir} exists and is not empty (pass overwrite=True / --overwrite to replace it)"
        )
    model, report = convert_model(checkpoint, config, overrides, strict=strict)
    _ensure_auto_map()

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.partial-", dir=output_dir.parent))
    umask = os.umask(0)
    os.umask(umask)
    staging.chmod(0o777 & ~umask)  # mkdtemp's folder is private; the result should look like any new folder
    try:
        print(f"Writing {output_dir}", file=sys.stderr)
        save_model_folder(model, VideoMask2FormerVideoProcessor(**report.video_processor_kwargs), staging)
        (staging / "README.md").write_text(_model_card(report), encoding="utf-8")
        if verify:
            _check_round_trip(model, staging)
        if output_dir.exists():
            replaced = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
            output_dir.rename(replaced / output_dir.name)
            staging.rename(output_dir)
            shutil.rmtree(replaced)
        else:
            staging.rename(output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report.output_dir = output_dir
    return report
