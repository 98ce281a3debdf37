"""``data.source=noise``: the FluxSR teacher preset (noise → HR flow matching)."""

from pathlib import Path

import pytest
import torch

from flowmapsr.config import ConfigError
from flowmapsr.inference.pipeline import SRPipeline
from flowmapsr.training.config import DataConfig
from flowmapsr.training.data import BatchStream
from flowmapsr.training.presets import resolve_config
from flowmapsr.training.runlog import read_csv
from flowmapsr.training.trainer import Trainer, train


def _noise_cfg(**kw) -> DataConfig:
    return DataConfig(kind="synthetic", crop_size=32, batch_size=4, synthetic_count=8,
                      source="noise", **kw)  # fmt: skip


def test_noise_source_is_standard_normal_independent_of_the_image_and_resumable():
    stream, g = BatchStream(_noise_cfg(), "cpu"), torch.Generator().manual_seed(0)
    first = stream.next(g)
    state, g_state = stream.state(), g.get_state()
    ref = [stream.next(g) for _ in range(3)]  # crosses the epoch boundary (2 batches/epoch)
    src = torch.cat([first.src, *[r.src for r in ref]])
    assert src.shape == (16, 3, 32, 32)
    assert abs(float(src.mean())) < 0.03 and abs(float(src.std()) - 1) < 0.03
    # Not the image plus something: the correlation of source and target is ~0.
    hr = torch.cat([first.hr, *[r.hr for r in ref]])
    corr = torch.corrcoef(torch.stack([src.flatten(), hr.flatten()]))[0, 1]
    assert abs(float(corr)) < 0.05
    # Epoch 1 shows the same 8 images with new noise (the seed includes the epoch).
    assert not any(torch.equal(a, b) for a in first.src for b in ref[1].src)
    again = BatchStream(_noise_cfg(), "cpu")
    again.load_state(state)
    g.set_state(g_state)
    for r in ref:
        got = again.next(g)
        assert torch.equal(got.src, r.src) and torch.equal(got.hr, r.hr)
    other = BatchStream(_noise_cfg(seed=1), "cpu").next(torch.Generator().manual_seed(0))
    assert not torch.equal(other.src, first.src)


def _losses(out: Path) -> dict[int, float]:
    return {int(r["step"]): float(r["loss"]) for r in read_csv(out / "train.csv")}


def test_teacher_preset_trains_and_resumes_exactly(tmp_path, tiny):
    ref_out, cut_out = tmp_path / "ref", tmp_path / "cut"
    common = ("optim.schedule=constant",)

    def cfg(out, *more):
        return resolve_config("fluxsr-teacher-fm", tiny(out, *common, *more))

    c = cfg(ref_out, "max_steps=6")
    assert c.data.source == "noise" and c.net.concat_source is False
    assert c.objective.name == "fm"
    export = train(c)
    train(cfg(cut_out, "max_steps=3", "checkpoint.every=3"))
    Trainer(cfg(cut_out, "max_steps=6")).fit()
    ref, cut = _losses(ref_out), _losses(cut_out)
    assert sorted(cut) == [1, 2, 3, 4, 5, 6]
    for step in (4, 5, 6):
        assert cut[step] == pytest.approx(ref[step], rel=1e-6, abs=1e-9)
    # The fm loss at t ~ U[0, 1] against v = ε − hr is ~E‖ε‖² + E‖hr‖² ≈ 1.x at the start:
    # an LR source close to the image gives ~0.05 here, so the noise reached the loss.
    assert ref[1] > 0.5
    pipe = SRPipeline.from_pretrained(export)
    assert pipe.config.net["concat_source"] is False


def test_noise_source_refuses_a_concatenated_source_and_pairs(tmp_path, tiny):
    with pytest.raises(ConfigError, match="net.concat_source"):
        resolve_config("fluxsr-teacher-fm", tiny(tmp_path, "net.concat_source=true"))
    with pytest.raises(ConfigError, match="data.kind must be synthetic or folders"):
        resolve_config("fluxsr-teacher-fm", tiny(tmp_path, "data.kind=pairs"))


def test_a_latent_noise_teacher_draws_its_noise_in_latent_space(tmp_path, tiny):
    from flowmapsr.training.trainer import Trainer

    cfg = resolve_config(
        "fluxsr-teacher-fm", tiny(tmp_path, "max_steps=1", "codec.type=vae", "net.in_channels=4")
    )
    t = Trainer(cfg)
    fb = t.flow_batch(t.data.next(t.scale_gen))
    assert fb.hr.shape[1] == 4 and fb.src.shape == fb.hr.shape  # latents, f = 8
    assert abs(float(fb.src.mean())) < 0.3 and abs(float(fb.src.std()) - 1) < 0.3
    assert fb.hr_image is not None and fb.hr_image.shape[1] == 3
