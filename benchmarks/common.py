"""Helpers shared by the benchmark scripts: environment, models at the preset sizes, synthetic frames, subprocesses."""

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch


REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = ["ytvis_2019_R50", "ytvis_2019_swin_tiny"]


def environment(threads: int | None = None) -> dict:
    """The machine and library versions, for the JSON and the table header."""
    import transformers

    cpu = platform.processor() or "unknown"
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), cpu)
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "threads": threads if threads is not None else torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def describe(env: dict) -> str:
    return (
        f"{env['cpu']} ({env['logical_cpus']} logical CPUs), {env['threads']} threads, load average "
        f"{env['load_average'][0]}; python {env['python']}, torch {env['torch']}, transformers {env['transformers']}"
    )


def machine_busy_seconds() -> float:
    """CPU seconds all processes of the machine have used since boot (from `/proc/stat`; 0 where it is missing)."""
    if not os.path.exists("/proc/stat"):
        return 0.0
    with open("/proc/stat") as stat:
        user, nice, system, _, _, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def wait_for_idle(max_seconds: float, window: float = 5.0, busy_fraction: float = 0.1) -> float:
    """Waits (at most `max_seconds`) until the machine's CPUs are at most `busy_fraction` busy over `window` seconds,
    so that a configuration does not start while other processes run. Returns the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < max_seconds:
        before = machine_busy_seconds()
        time.sleep(window)
        if machine_busy_seconds() - before <= busy_fraction * window * os.cpu_count():
            break
    return time.perf_counter() - start


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (`ru_maxrss` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def video_config(name: str):
    """`VideoMask2FormerConfig` of a preset name (e.g. `ytvis_2019_R50`) or an original yaml config path."""
    from modeling_video_mask2former.conversion.detectron2_config import config_from_detectron2, load_detectron2_config
    from modeling_video_mask2former.conversion.presets import PRESETS

    return config_from_detectron2(load_detectron2_config(PRESETS[name].config_path if name in PRESETS else name))


def small_resnet_config(num_labels: int, shortest_edge: int, train_num_points: int):
    """
    A 0.4M-parameter `VideoMask2FormerConfig` for training on CPU: a ResNet of 4 bottleneck stages (1 block each), a
    64-d decoder of 4 layers with 12 queries, and test sizes `shortest_edge` to twice that.
    """
    from transformers import ResNetConfig

    from modeling_video_mask2former import VideoMask2FormerConfig

    backbone = ResNetConfig(
        embedding_size=16,
        hidden_sizes=[32, 64, 128, 128],
        depths=[1, 1, 1, 1],
        layer_type="bottleneck",
        downsample_in_first_stage=False,
        downsample_in_bottleneck=False,
        out_features=["stage1", "stage2", "stage3", "stage4"],
    )
    return VideoMask2FormerConfig(
        backbone_config=backbone,
        feature_size=64,
        mask_feature_size=64,
        hidden_dim=64,
        num_attention_heads=4,
        dim_feedforward=128,
        encoder_layers=2,
        encoder_feedforward_dim=128,
        decoder_layers=4,
        num_queries=12,
        num_labels=num_labels,
        train_num_points=train_num_points,
        test_min_size=shortest_edge,
        test_max_size=2 * shortest_edge,
    )


def build_video_model(config):
    """A randomly initialised video model (seed 0), in eval mode."""
    from modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation

    torch.manual_seed(0)
    return VideoMask2FormerForVideoInstanceSegmentation(config).eval()


def synthetic_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """`(T, H, W, 3)` uint8 frames: a colour gradient with a box moving over it, plus noise."""
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[:height, :width]
    background = np.stack([columns * 255 // width, rows * 255 // height, np.full_like(rows, 96)], -1)
    frames = np.repeat(background[None], num_frames, axis=0).astype(np.int16)
    for index in range(num_frames):
        top, left = height // 4, (index * width // 32) % (width // 2)
        frames[index, top : top + height // 3, left : left + width // 4] = (230, 200, 40)
    frames += rng.integers(-8, 9, size=frames.shape, dtype=np.int16)
    return frames.clip(0, 255).astype(np.uint8)


def timed(function, repeats: int, synchronize=None, warm_up: bool = True) -> tuple[list[dict], object]:
    """
    One warm-up call, then `repeats` timed ones. Returns per run the seconds of wall time, of this process's CPU time
    and of CPU time used by other processes meanwhile (interference on a shared machine), and the last result.
    """
    result = function() if warm_up else None
    runs = []
    for _ in range(repeats):
        result = None  # the previous result is freed first: each run's peak memory is its own
        wall, cpu, busy = time.perf_counter(), time.process_time(), machine_busy_seconds()
        result = function()
        if synchronize is not None:
            synchronize()
        cpu = time.process_time() - cpu
        runs.append({"wall": time.perf_counter() - wall, "cpu": cpu, "others_cpu": machine_busy_seconds() - busy - cpu})
    return runs, result


def run_in_subprocess(script: str, spec: dict, package_root: str | None = None) -> dict:
    """Runs `script --child SPEC` in a fresh interpreter and returns the JSON it prints last. `package_root` is put
    first on the child's path, so that it imports another checkout of the package (see `checkout_package`)."""
    env = dict(os.environ)
    if package_root is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, script, "--child", json.dumps(spec)], capture_output=True, text=True, env=env, cwd=REPO
    )
    if completed.returncode != 0:
        raise RuntimeError(f"configuration {spec} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run_configurations(
    script: str,
    specs: list[dict],
    row: Callable[[dict], str],
    baseline_rev: str | None = None,
    wait_idle: float = 0.0,
    has_baseline: Callable[[dict], bool] = lambda spec: True,
) -> list[dict]:
    """
    Runs each spec through `script --child` in a fresh process (see `run_in_subprocess`), and, where `has_baseline(spec)`
    and `baseline_rev` is given, right after it with the package as of that git revision (`source` "baseline").
    Prints `row(result)` as each finishes and returns the results in order.
    """
    results = []
    with tempfile.TemporaryDirectory() as directory:
        baseline_root = checkout_package(baseline_rev, directory) if baseline_rev else None
        for spec in specs:
            sources = [("current", None)]
            if baseline_root is not None and has_baseline(spec):
                sources.append(("baseline", baseline_root))
            for source, root in sources:
                waited = wait_for_idle(wait_idle) if wait_idle else 0.0
                result = run_in_subprocess(script, spec, root) | {"source": source, "waited_for_idle": waited}
                results.append(result)
                print(row(result), flush=True)
    return results


def checkout_package(revision: str, directory: str) -> str:
    """Extracts `modeling_video_mask2former` as of git `revision` into `directory` and returns `directory`."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "modeling_video_mask2former"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", directory], input=archive.stdout, check=True)
    return directory


def parse_size(text: str) -> list[int]:
    """`"360x640"` -> `[360, 640]` (height, width)."""
    height, width = text.lower().split("x")
    return [int(height), int(width)]


def write_report(path: str | None, report: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2))
