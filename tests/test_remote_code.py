"""A saved folder loads as Hub custom code in a Python process where this package cannot be imported."""


import torch

from modeling_video_mask2former import VideoMask2FormerForVideoInstanceSegmentation

from .conftest import run_as_hub_user
from .test_modeling_video_mask2former import VideoMask2FormerModelTester


LOADER = """
    import torch
    from transformers import AutoConfig, AutoModel

    folder, inputs, outputs = sys.argv[1:4]
    config = AutoConfig.from_pretrained(folder, trust_remote_code=True)
    model = AutoModel.from_pretrained(folder, trust_remote_code=True).eval()
    assert type(model).__name__ == "VideoMask2FormerForVideoInstanceSegmentation", type(model)
    assert "modeling_video_mask2former" not in sys.modules
    with torch.no_grad():
        result = model(torch.load(inputs))
    torch.save({"class": result.class_queries_logits, "masks": result.masks_queries_logits, "model_type": config.model_type}, outputs)
"""


def test_saved_folder_loads_with_trust_remote_code_without_the_package(tmp_path):
    tester = VideoMask2FormerModelTester(batch_size=1, num_frames=2)
    torch.manual_seed(0)
    model = VideoMask2FormerForVideoInstanceSegmentation(tester.get_config()).eval()
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    for name in ("configuration_video_mask2former.py", "modeling_video_mask2former.py", "loss_video_mask2former.py"):
        assert (folder / name).is_file(), name

    pixel_values = tester.prepare_pixel_values()
    torch.save(pixel_values, tmp_path / "inputs.pt")
    run_as_hub_user(LOADER, tmp_path, str(folder), str(tmp_path / "inputs.pt"), str(tmp_path / "outputs.pt"))

    remote = torch.load(tmp_path / "outputs.pt")
    with torch.no_grad():
        local = model(pixel_values)
    assert remote["model_type"] == "video_mask2former"
    torch.testing.assert_close(remote["class"], local.class_queries_logits, atol=0, rtol=0)
    torch.testing.assert_close(remote["masks"], local.masks_queries_logits, atol=0, rtol=0)
