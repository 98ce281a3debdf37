import pytest
import torch

from flowmapsr.inference.pipeline import PipelineConfig, SRPipeline
from flowmapsr.nets import build_net
from flowmapsr.training.config import ValidationConfig
from flowmapsr.training.validation import load_validation_set, psnr_y, run_validation


def test_psnr_y_known_value():
    x = torch.zeros(1, 3, 8, 8)
    y = torch.full((1, 3, 8, 8), 0.1)
    # Y of a grey level g is (16 + 219·g)/255; a 0.1 grey step moves Y by 21.9/255.
    expect = 10 * torch.log10(torch.tensor(1.0 / (21.9 / 255) ** 2))
    assert torch.allclose(psnr_y(x, y), expect.expand(1), atol=1e-4)


def test_paired_folders_are_cropped_at_the_same_place(tmp_path):
    from PIL import Image

    g = torch.Generator().manual_seed(0)
    (tmp_path / "hr").mkdir()
    (tmp_path / "lr").mkdir()
    hr = (torch.rand(48, 64, 3, generator=g) * 255).byte().numpy()
    Image.fromarray(hr).save(tmp_path / "hr" / "a.png")
    Image.fromarray(hr[::4, ::4]).save(tmp_path / "lr" / "a.png")  # LR = HR subsampled
    cfg = ValidationConfig(
        hr_dir=str(tmp_path / "hr"), lr_dir=str(tmp_path / "lr"), count=1, crop=32, scale=4
    )
    v = load_validation_set(cfg)
    assert v.hr.shape == (1, 3, 32, 32) and v.lr.shape == (1, 3, 8, 8)
    assert torch.equal(v.hr[..., ::4, ::4], v.lr)
    with pytest.raises(FileNotFoundError, match="missing"):
        load_validation_set(ValidationConfig(hr_dir=str(tmp_path / "missing")))


def test_validation_logs_niqe_and_writes_a_grid(tmp_path):
    pytest.importorskip("flowmapsr.metrics.niqe")
    cfg = ValidationConfig(count=1, crop=192, steps=[1], guidance=[1.0, 2.0], niqe=True)
    net = build_net({"type": "small", "channels": 8, "blocks": 1, "emb_dim": 16})
    pipe = SRPipeline(net, PipelineConfig(net={"type": "small", "unshuffle": 4}))
    out = run_validation(pipe, load_validation_set(cfg), cfg, tmp_path / "g.png")
    assert {"psnr_y_bicubic", "niqe_bicubic", "psnr_y_nfe1_w1", "niqe_nfe1_w2"} <= set(out)
    from PIL import Image

    with Image.open(tmp_path / "g.png") as im:
        assert im.size == (192 * 4, 192)  # bicubic, ω=1, ω=2, HR
