"""The reference's weight recipe for the full-size cases: original-format weights regenerated from key names.

Each floating-point key gets its own generator seeded with the CRC-32 of its name and one draw; the first matching
rule below sets its value (see the reference's `fullsize/README.md`).
"""

import math
import zlib

import torch


DAMPING = 0.2
DAMPED_PREFIX = "sem_seg_head.predictor.transformer_"
DAMPED_SUFFIXES = ("out_proj.weight", "linear2.weight")
SKIPPED_KEYS = {"criterion.empty_weight"}


def regenerate_tensor(key: str, shape: list[int]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(zlib.crc32(key.encode("utf-8")))
    if key.endswith("running_var"):
        return torch.rand(shape, generator=generator, dtype=torch.float32) + 0.5
    noise = torch.randn(shape, generator=generator, dtype=torch.float32)
    if key.endswith("running_mean"):
        return noise * 0.1
    if any(name in key for name in ("query_feat", "query_embed", "level_embed")):
        return noise
    if key.endswith("relative_position_bias_table"):
        return noise * 0.02
    if len(shape) == 1 and key.endswith(".weight"):
        return noise * 0.1 + 1.0
    if len(shape) == 1 and key.endswith("bias"):
        return noise * 0.05
    if len(shape) >= 2:
        damping = DAMPING if key.startswith(DAMPED_PREFIX) and key.endswith(DAMPED_SUFFIXES) else 1.0
        return noise * (damping / math.sqrt(math.prod(shape[1:])))
    raise ValueError(f"no recipe rule matches {key} {shape}")


def regenerate_original_state_dict(entries: list[tuple[str, list[int], str]]) -> dict[str, torch.Tensor]:
    """Original-format state dict from `(key, shape, dtype)` manifest entries; integer buffers are skipped."""
    return {
        key: regenerate_tensor(key, shape)
        for key, shape, dtype in entries
        if dtype.startswith("float") and key not in SKIPPED_KEYS
    }
