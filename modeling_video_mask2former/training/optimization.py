"""The original training recipe on transformers' `Trainer`: parameter groups, AdamW, step schedule, gradient clipping.

The original (`train_net_video.py`) trains with AdamW at a base learning rate of 1e-4 and weight decay 0.05, with

- the backbone's learning rate multiplied by `SOLVER.BACKBONE_MULTIPLIER` (0.1);
- no weight decay on the parameters of normalization layers (`SOLVER.WEIGHT_DECAY_NORM` 0.0), of `nn.Embedding`s
  (`SOLVER.WEIGHT_DECAY_EMBED` 0.0: the decoder's query features, query embeddings and level embeddings) and on Swin's
  `relative_position_bias_table` / absolute position embedding;
- frozen parameters (the backbone's batch norms) left out;
- the learning rate multiplied by 0.1 at `SOLVER.STEPS` (4000 of 6000 iterations for YouTube-VIS 2019, 5500 of 8000
  for 2021), without warmup (`WARMUP_FACTOR` 1.0);
- the gradient norm of the whole model clipped to 0.01 (`CLIP_GRADIENTS` `full_model`), which is
  `TrainingArguments.max_grad_norm=0.01`.

As in the original, a plain `nn.Parameter` that is not a Swin position table keeps the weight decay; in particular the
pixel decoder's `level_embed` (an `nn.Parameter` there as here) is decayed.
"""

import bisect
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import EvalLoopOutput

from .metrics import YouTubeVISEvaluator


# The original's `norm_module_types`, plus `nn.RMSNorm`.
NORM_MODULE_TYPES = (
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    nn.SyncBatchNorm,
    nn.GroupNorm,
    nn.InstanceNorm1d,
    nn.InstanceNorm2d,
    nn.InstanceNorm3d,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
)
# Parameter names without weight decay wherever they are: the original's Swin names and transformers' Swin names.
NO_DECAY_PARAMETER_NAMES = ("relative_position_bias_table", "absolute_pos_embed", "position_embeddings")
# `SOLVER.STEPS / SOLVER.MAX_ITER` of the YouTube-VIS 2019 recipe (4000 / 6000).
DEFAULT_MILESTONE_FRACTION = 2 / 3


def get_parameter_groups(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    backbone_multiplier: float = 0.1,
    weight_decay_norm: float = 0.0,
    weight_decay_embed: float = 0.0,
) -> list[dict]:
    """
    The optimizer parameter groups of the original `build_optimizer`, merged by hyper-parameters.

    Args:
        model (`nn.Module`):
            A [`VideoMask2FormerForVideoInstanceSegmentation`] or [`VideoMask2FormerModel`]; the backbone is
            `model.base_model.pixel_level_module.encoder`.
        learning_rate (`float`): base learning rate (`SOLVER.BASE_LR`).
        weight_decay (`float`): weight decay of all other parameters (`SOLVER.WEIGHT_DECAY`).
        backbone_multiplier (`float`): learning-rate factor of the backbone (`SOLVER.BACKBONE_MULTIPLIER`).
        weight_decay_norm (`float`): weight decay of normalization layers (`SOLVER.WEIGHT_DECAY_NORM`).
        weight_decay_embed (`float`): weight decay of `nn.Embedding`s (`SOLVER.WEIGHT_DECAY_EMBED`).

    Returns:
        `list[dict]`: non-empty groups, each with `params`, `lr`, `weight_decay` and a `name` (`"head"` or
        `"backbone"`, then `"_decay"`, `"_no_decay"` or `"_decay_<value>"` for a norm/embedding decay other than
        `weight_decay`), head first, higher decay first. Only parameters with `requires_grad` appear, each once.
    """
    backbone_parameters = {id(parameter) for parameter in model.base_model.pixel_level_module.encoder.parameters()}
    groups: dict[tuple[bool, float], dict] = {}
    seen = set()
    for module in model.modules():
        for name, parameter in module.named_parameters(recurse=False):
            if not parameter.requires_grad or id(parameter) in seen:
                continue
            seen.add(id(parameter))
            decay = weight_decay
            if any(no_decay in name for no_decay in NO_DECAY_PARAMETER_NAMES):
                decay = 0.0
            if isinstance(module, NORM_MODULE_TYPES):
                decay = weight_decay_norm
            if isinstance(module, nn.Embedding):
                decay = weight_decay_embed
            in_backbone = id(parameter) in backbone_parameters
            if (in_backbone, decay) not in groups:
                suffix = "no_decay" if decay == 0 else "decay" if decay == weight_decay else f"decay_{decay:g}"
                groups[in_backbone, decay] = {
                    "name": f"{'backbone' if in_backbone else 'head'}_{suffix}",
                    "params": [],
                    "lr": learning_rate * backbone_multiplier if in_backbone else learning_rate,
                    "weight_decay": decay,
                }
            groups[in_backbone, decay]["params"].append(parameter)
    return [groups[key] for key in sorted(groups, key=lambda key: (key[0], -key[1]))]


def _step_factor(step: int, milestones: Sequence[int], gamma: float, num_warmup_steps: int) -> float:
    warmup = step / num_warmup_steps if step < num_warmup_steps else 1.0
    return warmup * gamma ** bisect.bisect_right(milestones, step)


def get_step_schedule(
    optimizer: torch.optim.Optimizer, milestones: Sequence[int], gamma: float = 0.1, num_warmup_steps: int = 0
) -> LambdaLR:
    """
    detectron2's `WarmupMultiStepLR` as a `LambdaLR`: every group's learning rate is multiplied by `gamma` once per
    milestone reached (the optimizer step with index `milestone` is the first at the lower rate), after an optional
    linear warmup from 0 over `num_warmup_steps` steps (the original has none).
    """
    milestones = sorted(milestones)
    return LambdaLR(
        optimizer, partial(_step_factor, milestones=milestones, gamma=gamma, num_warmup_steps=num_warmup_steps)
    )


class _DatasetEpochCallback(TrainerCallback):
    """Tells the training dataset which epoch starts, so its augmentations depend on (seed, epoch, index) only."""

    def __init__(self, dataset):
        self.dataset = dataset

    def on_epoch_begin(self, args, state, control, **kwargs):
        # `state.epoch` is whole at an epoch start, or the fraction reached when resuming inside an epoch.
        self.dataset.set_epoch(int(state.epoch or 0))


class VideoMask2FormerTrainer(Trainer):
    """
    `Trainer` with the original recipe's parameter groups and step schedule, and YouTube-VIS AP evaluation.

    The optimizer class and its remaining arguments come from `TrainingArguments` (`optim`, betas, epsilon; AdamW as
    in the original with [`default_training_arguments`]); `lr_scheduler_type` is not used.

    Args:
        backbone_multiplier (`float`, *optional*, defaults to 0.1):
            Learning-rate factor of the backbone.
        lr_milestones (`Sequence[int]`, *optional*):
            Optimizer steps at which the learning rate is multiplied by `lr_gamma`. Defaults to 2/3 of the training
            steps (the YouTube-VIS 2019 recipe; 2021 uses 5500 of 8000).
        lr_gamma (`float`, *optional*, defaults to 0.1):
            Factor applied at each milestone.
        video_evaluator ([`YouTubeVISEvaluator`], *optional*):
            Evaluates whole videos of `eval_dataset` (batches from [`VideoMask2FormerDataCollator`]) with the official
            YouTube-VIS AP; `evaluate()` then reports `eval_AP`, `eval_AP50`, ... Without it, evaluation reports the
            loss of labelled batches as a plain `Trainer` does.

    A training dataset with a `set_epoch(epoch)` method (as [`YouTubeVISClipDataset`]) is told the epoch at the start
    of each one.
    """

    def __init__(
        self,
        *args,
        backbone_multiplier: float = 0.1,
        lr_milestones: Sequence[int] | None = None,
        lr_gamma: float = 0.1,
        video_evaluator: YouTubeVISEvaluator | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.backbone_multiplier = backbone_multiplier
        self.lr_milestones = lr_milestones
        self.lr_gamma = lr_gamma
        self.video_evaluator = video_evaluator
        if hasattr(self.train_dataset, "set_epoch"):
            if self.args.dataloader_persistent_workers and self.args.dataloader_num_workers > 0:
                raise ValueError(
                    "dataloader_persistent_workers would keep each worker's copy of the training dataset at its first "
                    "epoch; turn it off so that augmentations follow the epoch."
                )
            self.add_callback(_DatasetEpochCallback(self.train_dataset))

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        """AdamW (or `args.optim`) over [`get_parameter_groups`] with `args.learning_rate` and `args.weight_decay`."""
        model = self.model if model is None else model
        if self.optimizer is None:
            groups = get_parameter_groups(
                self.accelerator.unwrap_model(model),
                learning_rate=self.args.learning_rate,
                weight_decay=self.args.weight_decay,
                backbone_multiplier=self.backbone_multiplier,
            )
            if self.optimizer_cls_and_kwargs is not None:
                optimizer_cls, optimizer_kwargs = self.optimizer_cls_and_kwargs
            else:
                optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> torch.optim.lr_scheduler.LRScheduler:
        """[`get_step_schedule`] with `lr_milestones` (default: 2/3 of `num_training_steps`) and `args` warmup."""
        if self.lr_scheduler is None:
            milestones = self.lr_milestones
            if milestones is None:
                milestones = [round(DEFAULT_MILESTONE_FRACTION * num_training_steps)]
            self.lr_scheduler = get_step_schedule(
                self.optimizer if optimizer is None else optimizer,
                milestones=milestones,
                gamma=self.lr_gamma,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
            )
            # As the parent: a scheduler created here is rebuilt by the next `train()` call.
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def prediction_step(
        self,
        model: nn.Module,
        inputs: dict,
        prediction_loss_only: bool,
        ignore_keys: list[str] | None = None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """
        With a `video_evaluator` and a batch of whole videos (`video_ids` present): predict, turn the tracks into
        result records, gather them from all processes and hand them to the evaluator; nothing is returned to the
        evaluation loop, so only RLE records are kept in memory. Otherwise the parent's step.
        """
        if self.video_evaluator is None or "video_ids" not in inputs:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys)
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad(), self.compute_loss_context_manager():
            outputs = model(pixel_values_videos=inputs["pixel_values_videos"])
        records = self.video_evaluator.predict(
            outputs, inputs["video_ids"].tolist(), inputs["resized_sizes"], inputs["original_sizes"]
        )
        self.video_evaluator.add(self.accelerator.gather_for_metrics(records, use_gather_object=True))
        return None, None, None

    def evaluation_loop(
        self,
        dataloader: DataLoader,
        description: str,
        prediction_loss_only: bool | None = None,
        ignore_keys: list[str] | None = None,
        metric_key_prefix: str = "eval",
    ) -> EvalLoopOutput:
        """The parent's loop, then the `video_evaluator`'s numbers as `{metric_key_prefix}_AP`, `..._AP50`, ...."""
        if self.video_evaluator is not None:
            self.video_evaluator.reset()
        output = super().evaluation_loop(
            dataloader, description, prediction_loss_only, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix
        )
        if self.video_evaluator is not None and self.video_evaluator.num_videos > 0:
            stats = self.video_evaluator.compute()
            output.metrics.update({f"{metric_key_prefix}_{name}": value for name, value in stats.items()})
        return output


def default_training_kwargs() -> dict:
    """
    The original YouTube-VIS recipe as `TrainingArguments` keyword arguments: AdamW, lr 1e-4, weight decay 0.05,
    full-model gradient clipping at 0.01, 6000 steps of 2 clips per device (16 clips on 8 GPUs), 4 data workers, logs
    every 20 steps, and mixed precision (bf16 where supported, else fp16) only on CUDA. Evaluation batches hold one
    whole video each. Without an accelerator, `use_cpu` is set, so that processes started by `torchrun` on CPU train
    together (gloo) instead of each on its own.
    """
    kwargs = {
        "learning_rate": 1e-4,
        "weight_decay": 0.05,
        "max_grad_norm": 0.01,
        "optim": "adamw_torch",
        "warmup_steps": 0,
        "max_steps": 6000,
        "per_device_train_batch_size": 2,
        "per_device_eval_batch_size": 1,
        "dataloader_num_workers": 4,
        "logging_steps": 20,
        "save_steps": 500,
        "remove_unused_columns": False,
        "eval_do_concat_batches": False,
        "dataloader_pin_memory": torch.cuda.is_available(),
        # Without an accelerator, say so: several processes then train together on CPU (gloo).
        "use_cpu": not torch.accelerator.is_available(),
    }
    if torch.cuda.is_available():
        kwargs["bf16" if torch.cuda.is_bf16_supported() else "fp16"] = True
    return kwargs


def default_training_arguments(output_dir: str, **overrides) -> TrainingArguments:
    """`TrainingArguments` of the original recipe ([`default_training_kwargs`]) with `overrides` applied."""
    return TrainingArguments(output_dir=output_dir, **{**default_training_kwargs(), **overrides})


__all__ = [
    "NORM_MODULE_TYPES",
    "VideoMask2FormerTrainer",
    "default_training_arguments",
    "default_training_kwargs",
    "get_parameter_groups",
    "get_step_schedule",
]
