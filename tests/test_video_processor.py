"""VideoMask2FormerVideoProcessor against the original test-time mapper (tests/fixtures/preprocess, tests/fixtures/e2e)."""

import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from modeling_video_mask2former.video_processing_video_mask2former import VideoMask2FormerVideoProcessor


FIXTURES = Path(__file__).parent / "fixtures"
MEAN = torch.tensor([123.675, 116.28, 103.53]).view(3, 1, 1)
STD = torch.tensor([58.395, 57.12, 57.375]).view(3, 1, 1)


@pytest.fixture(scope="module")
def processor():
    return VideoMask2FormerVideoProcessor()


@pytest.fixture(scope="module")
def e2e():
    return load_file(FIXTURES / "e2e/processor_cases.safetensors"), json.loads(
        (FIXTURES / "e2e/processor_cases.json").read_text()
    )


def resized_frames(processor, frames_thwc):
    """The processor's resized uint8 frames, (T, 3, h, w)."""
    return processor.resize(frames_thwc.permute(0, 3, 1, 2), size=processor.size, resample=processor.resample)


def test_resize_size_table():
    table = json.loads((FIXTURES / "preprocess/preprocess_mapper.json").read_text())["resize_size_table"]
    assert len(table) == 22
    for row in table:
        processor = VideoMask2FormerVideoProcessor(
            size={"shortest_edge": row["min_size_test"], "longest_edge": row["max_size_test"]}
        )
        video = torch.zeros((1, *row["raw_hw"], 3), dtype=torch.uint8)
        inputs = processor(video)
        assert inputs["resized_sizes"].tolist() == [row["resized_hw"]], row
        assert inputs["original_sizes"].tolist() == [row["raw_hw"]]


@pytest.mark.parametrize("case", ["up_45x70_min360", "down_380x390_min360"])
def test_preprocess_mapper_cases(processor, case):
    reference = load_file(FIXTURES / "preprocess/preprocess_mapper.safetensors")
    frames = reference[f"{case}.raw_frames_uint8_thwc"]
    expected = reference[f"{case}.mapper_output_uint8_tchw"]
    assert torch.equal(resized_frames(processor, frames), expected)

    inputs = processor(frames)
    height, width = expected.shape[-2:]
    assert inputs["resized_sizes"].tolist() == [[height, width]]
    assert torch.equal(inputs["pixel_values_videos"][0, :, :, :height, :width], (expected.float() - MEAN) / STD)


@pytest.mark.parametrize("case", ["tiny_r50_e2e_t2_125x118", "tiny_swin_e2e_t2_97x101"])
def test_e2e_cases(processor, e2e, case):
    tensors, cases = e2e
    info = cases[case]
    assert info["min_size_test"] == processor.size.shortest_edge == 360
    frames = tensors[f"{case}.input_frames_uint8_thwc"]
    assert torch.equal(resized_frames(processor, frames), tensors[f"{case}.mapper_output_uint8_tchw"])

    inputs = processor(frames)
    pixel_values = inputs["pixel_values_videos"]
    num_frames, (height, width), padded = len(frames), info["resized_hw"], info["padded_hw"]
    assert pixel_values.shape == (1, num_frames, 3, *padded) and pixel_values.dtype == torch.float32
    assert inputs["resized_sizes"].tolist() == [[height, width]]
    assert inputs["original_sizes"].tolist() == [list(frames.shape[1:3])]
    expected_mask = torch.zeros((1, num_frames, *padded), dtype=torch.long)
    expected_mask[..., :height, :width] = 1
    assert torch.equal(inputs["pixel_mask"], expected_mask)
    torch.testing.assert_close(
        pixel_values[:, 0, :, -32:], tensors[f"{case}.backbone_input.frame0_last32rows"], rtol=0, atol=1e-6
    )
    for frame, stats in zip(pixel_values[0], info["backbone_input_per_frame_stats"]):
        values = frame.double()
        assert values.sum().item() == pytest.approx(stats["sum"], rel=1e-9)
        assert values.abs().sum().item() == pytest.approx(stats["sum_abs"], rel=1e-9)
        assert (values**2).sum().item() == pytest.approx(stats["sum_sq"], rel=1e-9)
        padding = torch.ones(frame.shape, dtype=torch.bool)
        padding[:, :height, :width] = False
        assert (frame[padding] == 0).sum().item() == stats["n_exact_zero_in_padding"] == padding.sum().item()
        assert hashlib.sha256(frame.numpy().tobytes()).hexdigest() == stats["sha256_float32_bytes"]


def test_input_forms_agree(processor, e2e):
    frames = e2e[0]["tiny_swin_e2e_t2_97x101.input_frames_uint8_thwc"]
    expected = processor(frames)["pixel_values_videos"]
    forms = {
        "numpy thwc": frames.numpy(),
        "tensor tchw": frames.permute(0, 3, 1, 2),
        "PIL frames": [Image.fromarray(frame) for frame in frames.numpy()],
        "list of frame arrays": list(frames.numpy()),
    }
    for name, video in forms.items():
        assert torch.equal(processor(video)["pixel_values_videos"], expected), name
    batch = processor([frames, frames.numpy()])["pixel_values_videos"]
    assert torch.equal(batch, torch.cat([expected, expected]))


def test_frame_directory(processor, e2e, tmp_path):
    frames = e2e[0]["tiny_r50_e2e_t2_125x118.input_frames_uint8_thwc"].numpy()
    # written last-first, so only sorting by name gives the right order
    for index in reversed(range(len(frames))):
        Image.fromarray(frames[index]).save(tmp_path / f"{5 * index:05d}.png")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    inputs = processor(str(tmp_path), return_metadata=True)
    assert torch.equal(inputs["pixel_values_videos"], processor(frames)["pixel_values_videos"])
    metadata = inputs["video_metadata"][0]
    assert (metadata.total_num_frames, metadata.height, metadata.width) == (2, 125, 118)


# lossless codecs; an MKV written this way records no frame count
@pytest.mark.parametrize("container_format, codec, pixel_format", [("mov", "png", "rgb24"), ("mkv", "ffv1", "bgr0")])
def test_video_file(processor, tmp_path, container_format, codec, pixel_format):
    frames = np.random.default_rng(0).integers(0, 256, (3, 37, 53, 3), dtype=np.uint8)
    path = str(tmp_path / f"clip.{container_format}")
    with av.open(path, "w") as container:
        stream = container.add_stream(codec, rate=5)
        stream.width, stream.height, stream.pix_fmt = 53, 37, pixel_format
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    expected = processor(frames)
    inputs = processor(path)
    assert torch.equal(inputs["pixel_values_videos"], expected["pixel_values_videos"])
    assert inputs["original_sizes"].tolist() == [[37, 53]]


def test_batch_pads_to_common_size(processor):
    rng = np.random.default_rng(1)
    small = rng.integers(0, 256, (2, 40, 200, 3), dtype=np.uint8)  # -> 267 x 1333 (long side capped)
    large = rng.integers(0, 256, (2, 90, 60, 3), dtype=np.uint8)  # -> 540 x 360
    inputs = processor([small, large])
    assert inputs["pixel_values_videos"].shape == (2, 2, 3, 544, 1344)
    assert inputs["resized_sizes"].tolist() == [[267, 1333], [540, 360]]
    for index, video in enumerate([small, large]):
        alone = processor(video)
        height, width = alone["resized_sizes"][0].tolist()
        hp, wp = alone["pixel_values_videos"].shape[-2:]
        assert torch.equal(inputs["pixel_values_videos"][index, ..., :hp, :wp], alone["pixel_values_videos"][0])
        assert inputs["pixel_values_videos"][index, ..., height:, :].abs().sum() == 0
        assert inputs["pixel_values_videos"][index, ..., width:].abs().sum() == 0
        assert inputs["pixel_mask"][index].sum() == 2 * height * width


def test_grayscale_and_rgba(processor):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (2, 30, 40, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (2, 30, 40), dtype=np.uint8)
    rgba = np.concatenate([rgb, rng.integers(0, 256, (2, 30, 40, 1), dtype=np.uint8)], axis=-1)
    expected_gray = processor(np.repeat(gray[..., None], 3, axis=-1))["pixel_values_videos"]
    expected_rgb = processor(rgb)["pixel_values_videos"]
    assert torch.equal(processor([Image.fromarray(f, "L") for f in gray])["pixel_values_videos"], expected_gray)
    assert torch.equal(processor(gray[..., None])["pixel_values_videos"], expected_gray)
    assert torch.equal(processor([Image.fromarray(f, "RGBA") for f in rgba])["pixel_values_videos"], expected_rgb)
    assert torch.equal(processor(rgba)["pixel_values_videos"], expected_rgb)


def test_small_frames_without_resize(processor):
    video = np.random.default_rng(3).integers(0, 256, (3, 20, 17, 3), dtype=np.uint8)
    inputs = processor(video, do_resize=False)
    assert inputs["pixel_values_videos"].shape == (1, 3, 3, 32, 32)
    assert inputs["resized_sizes"].tolist() == [[20, 17]]
    expected = (torch.from_numpy(video).permute(0, 3, 1, 2).float() - MEAN) / STD
    assert torch.equal(inputs["pixel_values_videos"][0, :, :, :20, :17], expected)
    assert inputs["pixel_mask"][0, :, :20, :17].all() and inputs["pixel_mask"].sum() == 3 * 20 * 17
    assert processor(video)["resized_sizes"].tolist() == [[424, 360]]  # 20 * 360 / 17 = 423.5


def test_save_and_load(tmp_path):
    processor = VideoMask2FormerVideoProcessor(size={"shortest_edge": 480, "longest_edge": 1333})
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "video_preprocessor_config.json").is_file()
    loaded = VideoMask2FormerVideoProcessor.from_pretrained(tmp_path)
    assert loaded.to_dict() == processor.to_dict()
    assert loaded.size.shortest_edge == 480 and loaded.size_divisor == 32


def test_bad_inputs(processor, tmp_path):
    frame = np.zeros((8, 8, 3), dtype=np.uint8)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    Image.fromarray(frame).save(mixed / "00000.jpg")
    Image.fromarray(np.zeros((9, 8, 3), dtype=np.uint8)).save(mixed / "00005.jpg")
    with pytest.raises(ValueError, match="00005.jpg"):
        processor(str(mixed))

    not_image = tmp_path / "not_image"
    not_image.mkdir()
    Image.fromarray(frame).save(not_image / "00000.jpg")
    (not_image / "notes.txt").write_text("not a frame")
    with pytest.raises(ValueError, match="notes.txt"):
        processor(str(not_image))

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no frames"):
        processor(str(empty))
    with pytest.raises(ValueError, match="no frames"):
        processor(np.zeros((0, 8, 8, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="no frames"):
        processor([])

    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all")
    with pytest.raises(ValueError, match="corrupt.mp4"):
        processor(str(corrupt))

    missing = str(tmp_path / "missing.mp4")
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        processor(missing)

    with pytest.raises(ValueError, match="Frame 2"):
        processor([frame, frame, np.zeros((8, 9, 3), dtype=np.uint8)])
    with pytest.raises(ValueError, match="same number of frames"):
        processor([np.zeros((2, 8, 8, 3), dtype=np.uint8), np.zeros((3, 8, 8, 3), dtype=np.uint8)])
    with pytest.raises(TypeError, match="uint8"):
        processor(np.zeros((2, 8, 8, 3), dtype=np.float32))
