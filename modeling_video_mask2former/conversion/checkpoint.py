"""Load original detectron2 checkpoints (`.pkl` model-zoo pickles, `.pth`, `.safetensors`) without running code."""

import codecs
import collections
import hashlib
import os
import pickle
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A pickle asked for a Python object other than the plain data a checkpoint is made of."""


def _numpy_globals() -> dict[tuple[str, str], object]:
    """The numpy callables that rebuild arrays, dtypes and scalars, under their numpy 1 and numpy 2 module names."""
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    numeric = np._core.numeric if hasattr(np, "_core") else np.core.numeric
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    for name, dtype_class in vars(getattr(np, "dtypes", collections)).items():
        if isinstance(dtype_class, type) and issubclass(dtype_class, np.dtype):
            allowed[("numpy.dtypes", name)] = dtype_class
    return allowed


SAFE_GLOBALS: dict[tuple[str, str], object] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("builtins", "tuple"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "bytearray"): bytearray,
    ("_codecs", "encode"): codecs.encode,  # how protocol-2 pickles store bytes
    **_numpy_globals(),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays, numpy dtypes/scalars and builtin containers."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refusing to load global '{module}.{name}': a checkpoint pickle may only hold numpy arrays, "
                "numpy dtypes/scalars and builtin containers"
            ) from None

    def persistent_load(self, pid: object) -> object:
        raise UnsafeCheckpointError("refusing to load a persistent id: use torch.load for torch checkpoints")


def load_pickle(path: str | os.PathLike) -> object:
    """Unpickle `path` with `RestrictedUnpickler` (nothing but plain data is ever constructed)."""
    with open(path, "rb") as file:
        return RestrictedUnpickler(file, encoding="latin1").load()


def _to_tensor(key: str, value: object) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"checkpoint entry {key!r} has unsupported dtype {array.dtype}")
    return torch.from_numpy(array.copy())


def normalize_legacy_keys(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """
    Rename the legacy key forms the original still loads: MaskFormer-era `sem_seg_head.<x>` pixel-decoder keys become
    `sem_seg_head.pixel_decoder.<x>`, and `sem_seg_head.predictor.static_query` becomes `query_feat`.
    """
    normalized = {}
    for key, value in state_dict.items():
        if key.startswith("sem_seg_head.") and not key.startswith(
            ("sem_seg_head.predictor.", "sem_seg_head.pixel_decoder.")
        ):
            key = "sem_seg_head.pixel_decoder." + key.removeprefix("sem_seg_head.")
        key = re.sub(r"^sem_seg_head\.predictor\.static_query\.", "sem_seg_head.predictor.query_feat.", key)
        if key in normalized:
            raise ValueError(f"checkpoint holds both the legacy and the current form of {key!r}")
        normalized[key] = value
    return normalized


def default_cache_dir() -> Path:
    """Where downloaded checkpoints are kept (`$VIDEO_MASK2FORMER_CACHE`, else `~/.cache/video_mask2former`)."""
    return Path(os.environ.get("VIDEO_MASK2FORMER_CACHE", Path.home() / ".cache" / "video_mask2former"))


def cached_checkpoint_path(url: str) -> Path:
    """Where the checkpoint at `url` is (or will be) cached: one sub-folder per URL, the file keeps its name."""
    folder = default_cache_dir() / hashlib.sha256(url.encode()).hexdigest()[:16]
    return folder / (Path(urlparse(url).path).name or "checkpoint")


def resolve_checkpoint(path_or_url: str | os.PathLike) -> Path:
    """A local path as is; an http(s) URL downloaded once into the cache."""
    text = str(path_or_url)
    if not text.startswith(("http://", "https://")):
        path = Path(text).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint file at {text!r}")
        return path
    target = cached_checkpoint_path(text)
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        print(f"Downloading {text} to {target}", file=sys.stderr)
        torch.hub.download_url_to_file(text, str(target), progress=sys.stderr.isatty())
    return target


def _torch_load(path: Path) -> object:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        lines = [line for line in str(error).splitlines() if "GLOBAL" in line] or str(error).splitlines()[:1]
        raise UnsafeCheckpointError(f"torch.load(weights_only=True) refused {path}: {lines[0].strip()}") from None


def load_original_state_dict(path_or_url: str | os.PathLike) -> dict[str, torch.Tensor]:
    """
    The original model's state dict from a detectron2 checkpoint: `{"model": state_dict, ...}` or a bare state dict,
    as a `.pkl` of numpy arrays (restricted unpickler), a torch file (`weights_only=True`) or `.safetensors`. Entries
    that are not arrays (`__author__`, ...) are ignored.
    """
    path = resolve_checkpoint(path_or_url)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        loaded = load_file(path)
    else:
        with open(path, "rb") as file:
            is_zip = file.read(4) == b"PK\x03\x04"
        if path.suffix == ".pkl" and not is_zip:
            loaded = load_pickle(path)
        else:
            loaded = _torch_load(path)
    if not isinstance(loaded, Mapping):
        raise ValueError(f"{path} does not hold a state dict (found {type(loaded).__name__})")
    state_dict = loaded["model"] if isinstance(loaded.get("model"), Mapping) else loaded
    tensors = {
        key: _to_tensor(key, value)
        for key, value in state_dict.items()
        if isinstance(value, (torch.Tensor, np.ndarray, np.generic))
    }
    if not tensors:
        raise ValueError(f"{path} holds no tensors")
    return tensors
