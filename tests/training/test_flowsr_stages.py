"""FlowSR's two stages through the trainer: the SR flow, then consistency distillation from a
frozen copy of it (kept in the checkpoint, resumed exactly, exported with its solver)."""

from __future__ import annotations

import pytest
import torch

from flowmapsr.config import ConfigError
from flowmapsr.flowmap import Condition
from flowmapsr.inference.pipeline import SRPipeline
from flowmapsr.training.checkpoint import latest_checkpoint, read_tensors
from flowmapsr.training.presets import resolve_config
from flowmapsr.training.runlog import read_csv
from flowmapsr.training.trainer import Trainer, train

# The ℓ2 + sobel stand-in keeps the test independent of the fetched LPIPS weights.
CHEAP_D = (
    "objective.distance.perceptual.kind=sobel_l1",
    "objective.distance.perceptual.weight=0.5",
)


def _losses(out):
    return {int(r["step"]): float(r["loss"]) for r in read_csv(out / "train.csv")}


@pytest.fixture
def stage1(tmp_path, tiny):
    out = tmp_path / "s1"
    export = train(resolve_config("flowsr-stage1-srflow", tiny(out, "max_steps=3", *CHEAP_D)))
    logs = read_csv(out / "train.csv")
    assert {"loss_velocity", "loss_image"} <= set(logs[0])
    return export


def test_consistency_stage_keeps_its_teacher_resumes_exactly_and_exports_its_solver(
    tmp_path, tiny, stage1
):
    common = (*CHEAP_D, f"init_from={stage1}", "optim.schedule=constant")
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    train(resolve_config("flowsr-stage2-consistency", tiny(ref, "max_steps=5", *common)))
    train(
        resolve_config(
            "flowsr-stage2-consistency", tiny(cut, "max_steps=3", "checkpoint.every=3", *common)
        )
    )
    ck = latest_checkpoint(cut / "checkpoints")
    teacher = read_tensors(ck, "teacher")
    start = SRPipeline.from_pretrained(stage1).net.state_dict()
    assert teacher.keys() == start.keys()
    assert all(torch.equal(teacher[k], start[k]) for k in start)  # frozen: never trained
    export = Trainer(
        resolve_config("flowsr-stage2-consistency", tiny(cut, "max_steps=5", *common))
    ).fit()
    a, b = _losses(ref), _losses(cut)
    assert sorted(b) == [1, 2, 3, 4, 5]
    for step in (4, 5):
        assert b[step] == pytest.approx(a[step], rel=1e-6, abs=1e-9)
    assert {"loss_cd", "loss_hr", "loss_flow"} <= set(read_csv(cut / "train.csv")[0])
    pipe = SRPipeline.from_pretrained(export)
    assert pipe.config.solver == "consistency"
    assert pipe.config.info["teacher"].startswith("frozen copy of the start")
    assert "sobel" in pipe.config.info["distance"]
    y = pipe.upscale_tensor(torch.rand(1, 3, 8, 8), scale=4, steps=2)
    assert y.shape == (1, 3, 32, 32) and torch.isfinite(y).all()


def test_teacher_from_another_export(tmp_path, tiny, stage1):
    out = tmp_path / "s2"
    cfg = resolve_config(
        "flowsr-stage2-consistency",
        tiny(out, "max_steps=1", *CHEAP_D, f"teacher_from={stage1}"),
    )
    t = Trainer(cfg)
    assert t.teacher_note == f"teacher_from {stage1}"
    assert not any(p.requires_grad for p in t.frozen.parameters())


def test_consistency_without_a_start_or_teacher_is_a_config_error(tmp_path, tiny):
    with pytest.raises(ConfigError, match="init_from must be set"):
        resolve_config("flowsr-stage2-consistency", tiny(tmp_path, "max_steps=1"))


def test_a_latent_codec_stage_trains_resumes_exactly_and_exports_its_codec(tmp_path, tiny):
    """The flow on a tiny random AutoencoderKL's latents (f = 8): targets and sources encoded,
    the image-space distance decoded; the codec's random weights travel in the checkpoint and
    the export, so a resume repeats the run and the export upscales."""
    common = (*CHEAP_D, "codec.type=vae", "net.in_channels=4", "optim.schedule=constant")
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    train(resolve_config("flowsr-stage1-srflow", tiny(ref, "max_steps=4", *common)))
    train(
        resolve_config(
            "flowsr-stage1-srflow", tiny(cut, "max_steps=2", "checkpoint.every=2", *common)
        )
    )
    assert (latest_checkpoint(cut / "checkpoints") / "codec.safetensors").is_file()
    export = Trainer(
        resolve_config("flowsr-stage1-srflow", tiny(cut, "max_steps=4", *common))
    ).fit()
    a, b = _losses(ref), _losses(cut)
    for step in (3, 4):
        assert b[step] == pytest.approx(a[step], rel=1e-6, abs=1e-9)
    pipe = SRPipeline.from_pretrained(export)
    assert pipe.codec.config.type == "vae" and pipe.codec.factor == 8
    y = pipe.upscale_tensor(torch.rand(1, 3, 8, 8), scale=4)
    assert y.shape == (1, 3, 32, 32) and torch.isfinite(y).all()


def test_the_adversarial_stage_refuses_a_latent_codec(tmp_path, tiny):
    with pytest.raises(ConfigError, match="adversarial.enabled must be false with a latent"):
        resolve_config("flowmapsr-stage4-adversarial", tiny(tmp_path, "codec.type=vae"))


def test_a_lora_stage_trains_adapters_only_and_the_next_stage_starts_merged(tmp_path, tiny):
    lora = ("lora.rank=2", r"lora.targets='.*blocks\.\d+\.conv[12]'", "lora.also_train='emb_gap'")
    s1 = tmp_path / "s1"
    cfg = resolve_config("flowsr-stage1-srflow", tiny(s1, "max_steps=2", *CHEAP_D, *lora))
    t = Trainer(cfg)
    trainable = {n for n, p in t.net.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "emb_gap" in n for n in trainable)
    assert any("emb_gap" in n for n in trainable)
    export = t.fit()
    pipe = SRPipeline.from_pretrained(export)
    assert (export / "lora.safetensors").is_file() and pipe.config.lora.rank == 2
    s2 = Trainer(
        resolve_config(
            "flowsr-stage2-consistency", tiny(tmp_path / "s2", "max_steps=1", *CHEAP_D,
                                              f"init_from={export}")
        )
    )  # fmt: skip
    assert "LoRA merged at scale 1" in s2.init_note
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    one, c = torch.ones(1), Condition(source=x)
    with torch.no_grad():
        torch.testing.assert_close(s2.frozen(x, one, one, c), pipe.inference_net()(x, one, one, c))
    with pytest.raises(ConfigError, match="lora must be unset in the adversarial stage"):
        resolve_config("flowmapsr-stage4-adversarial", tiny(tmp_path / "x", *lora))


def test_flowsr_stage2_with_the_gan_term_trains_lora_and_the_discriminator(tmp_path, tiny, stage1):
    """FlowSR's GAN term: the adversarial stage with the consistency objective as its anchor
    (the frozen teacher is copied before the LoRA adapters go in)."""
    out = tmp_path / "gan"
    cfg = resolve_config(
        "flowsr-stage2-consistency",
        tiny(out, "max_steps=2", *CHEAP_D, f"init_from={stage1}", "adversarial.enabled=true",
             "adversarial.disc.channels=8", "adversarial.disc.depth=2",
             r"adversarial.lora.targets='.*blocks\.\d+\.conv[12]'", "adversarial.lora.rank=2"),
    )  # fmt: skip
    t = Trainer(cfg)
    assert not any("lora_" in n for n, _ in t.frozen.named_parameters())
    export = t.fit()
    logs = read_csv(out / "train.csv")[-1]
    assert {"loss_cd", "loss_hr", "anchor"} <= set(logs) and any(k.startswith("d_") for k in logs)
    pipe = SRPipeline.from_pretrained(export)
    assert pipe.config.solver == "consistency" and pipe.config.lora is not None


def test_the_next_stage_keeps_the_start_s_random_codec(tmp_path, tiny):
    """A tiny random VAE has no weights folder: stage 2 must reuse stage 1's, not draw another
    (its frozen teacher learned in stage 1's latent space)."""
    common = (*CHEAP_D, "codec.type=vae", "net.in_channels=4")
    s1 = train(
        resolve_config("flowsr-stage1-srflow", tiny(tmp_path / "s1", "max_steps=1", *common))
    )
    t = Trainer(
        resolve_config(
            "flowsr-stage2-consistency",
            tiny(tmp_path / "s2", "max_steps=1", *common, f"init_from={s1}"),
        )
    )
    start = SRPipeline.from_pretrained(s1).codec.state_dict()
    assert all(torch.equal(t.codec.state_dict()[k], v) for k, v in start.items())
