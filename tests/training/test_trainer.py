import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from flowmapsr.inference.pipeline import SRPipeline
from flowmapsr.training.checkpoint import latest_checkpoint, read_json
from flowmapsr.training.presets import resolve_config
from flowmapsr.training.runlog import read_csv
from flowmapsr.training.trainer import Trainer, train


def _losses(out: Path) -> dict[int, float]:
    return {int(r["step"]): float(r["loss"]) for r in read_csv(out / "train.csv")}


def test_a_short_run_logs_checkpoints_validates_and_exports(tmp_path, tiny):
    out = tmp_path / "run"
    cfg = resolve_config(
        "flowmapsr-stage2-distill",
        tiny(out, "max_steps=4", "checkpoint.every=2", "validation.every=2"),
    )
    export = train(cfg)
    losses = _losses(out)
    assert sorted(losses) == [1, 2, 3, 4] and all(v == v and v > 0 for v in losses.values())
    vals = read_csv(out / "val.csv")
    assert [int(r["step"]) for r in vals] == [2, 4]
    assert {"psnr_y_bicubic", "psnr_y_nfe1_w1"} <= set(vals[0])
    assert (out / "samples" / "step-00000004.png").is_file()
    ck = latest_checkpoint(out / "checkpoints")
    assert ck.name == "step-00000004"
    assert read_json(ck, "config.json")["objective"]["name"] == "shortcut"
    assert {p.name for p in ck.iterdir()} >= {
        "model.safetensors",
        "ema.safetensors",
        "objective.safetensors",
        "opt.optim.safetensors",
        "rng-rank0.safetensors",
        "state.json",
    }
    pipe = SRPipeline.from_pretrained(export)
    assert pipe.config.info["step"] == 4 and pipe.config.info["objective"] == "shortcut"
    y = pipe.upscale_tensor(torch.rand(1, 3, 8, 8), scale=4, steps=1)
    assert y.shape == (1, 3, 32, 32)


# The second variant draws the shortcut split and tie-free discrete pairs from the step generator.
RANDOM_TIMES = ("objective.split_uniform=true", "objective.pairs.time.kind=discrete",
                "objective.pairs.time.values=[0,0.25,0.5,0.75,1,1,1,1]")  # fmt: skip


@pytest.mark.parametrize("extra", [(), RANDOM_TIMES], ids=["default", "random-split-discrete"])
def test_resume_in_process_repeats_the_uninterrupted_run(tmp_path, tiny, extra):
    ref_out, cut_out = tmp_path / "ref", tmp_path / "cut"
    common = (
        "objective.name=shortcut",
        "objective.learned_weighting=true",
        "data.scales=[4,8]",
        "data.source_noise=0.01",
        "optim.schedule=constant",
        *extra,
    )
    train(resolve_config("flowmapsr-stage1-fm", tiny(ref_out, "max_steps=6", *common)))
    train(
        resolve_config(
            "flowmapsr-stage1-fm", tiny(cut_out, "max_steps=3", "checkpoint.every=3", *common)
        )
    )
    # Same config except the horizon; constant schedule after warm-up, so steps 4–6 match.
    t = Trainer(resolve_config("flowmapsr-stage1-fm", tiny(cut_out, "max_steps=6", *common)))
    t.fit()
    ref, cut = _losses(ref_out), _losses(cut_out)
    assert sorted(cut) == [1, 2, 3, 4, 5, 6]
    for step in (4, 5, 6):
        assert cut[step] == pytest.approx(ref[step], rel=1e-6, abs=1e-9)


def test_gradient_accumulation_runs(tmp_path, tiny):
    out = tmp_path / "acc"
    train(resolve_config("flowmapsr-stage1-fm", tiny(out, "max_steps=2", "grad_accum=2")))
    assert sorted(_losses(out)) == [1, 2]


def test_adversarial_stage_trains_lora_and_the_discriminator_only(tmp_path, tiny):
    base = train(resolve_config("flowmapsr-stage1-fm", tiny(tmp_path / "s1", "max_steps=1")))
    cfg = resolve_config(
        "flowmapsr-stage4-adversarial",
        tiny(
            tmp_path / "s4",
            "max_steps=2",
            f"init_from={base}",
            "adversarial.disc.depth=2",
            "adversarial.disc.channels=8",
            "adversarial.lora.rank=2",
            "adversarial.nfe=[1,2]",
        ),
    )
    t = Trainer(cfg)
    before = {k: v.clone() for k, v in t.net.state_dict().items()}
    d_before = {k: v.clone() for k, v in t.disc.state_dict().items()}
    export = t.fit()
    after = t.net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all("lora_" in k for k in changed)
    assert any(not torch.equal(d_before[k], v) for k, v in t.disc.state_dict().items())
    row = read_csv(tmp_path / "s4" / "train.csv")[-1]
    assert {"g_adv", "d_loss", "r1", "r2", "anchor", "perceptual"} <= set(row)
    assert (export / "lora.safetensors").is_file()
    # the export records which perceptual term ran: LPIPS when the weights are fetched
    from flowmapsr.pretrained import list_weights

    recorded = (export / "config.json").read_text()
    fetched = next(r for r in list_weights() if r["name"] == "vgg16")["present"]
    assert ("lpips (vgg, pretrained)" in recorded) == fetched
    assert fetched or "sobel_l1" in recorded
    pipe = SRPipeline.from_pretrained(export)
    lr = torch.rand(1, 3, 8, 8)
    y0 = pipe.upscale_tensor(lr, scale=4, lora_scale=0.0)
    y1 = pipe.upscale_tensor(lr, scale=4, lora_scale=1.0)
    assert y0.shape == y1.shape == (1, 3, 32, 32)


def test_unet_discriminator_stage_resumes_exactly_with_its_spectral_norm_state(tmp_path, tiny):
    """The Real-ESRGAN-style stage (U-Net + spectral norm discriminator, l1 + perceptual + GAN):
    interrupted at step 2 and resumed, steps 3–4 equal the uninterrupted run's — the power-
    iteration vectors of the spectral norm are checkpointed with the discriminator."""
    base = train(resolve_config("flowmapsr-stage1-fm", tiny(tmp_path / "s1", "max_steps=1")))
    common = (
        f"init_from={base}",
        "adversarial.disc.kind=unet",
        "adversarial.disc.spectral_norm=true",
        "adversarial.disc.depth=2",
        "adversarial.disc.channels=8",
        "adversarial.lora.rank=2",
        "adversarial.r_every=2",
        "optim.warmup_steps=0",
        "terms=[{name: l1, weight: 1.0}]",
    )
    ref_out, cut_out = tmp_path / "ref", tmp_path / "cut"
    stage = "flowmapsr-stage4-adversarial"
    t = Trainer(resolve_config(stage, tiny(ref_out, "max_steps=4", *common)))
    assert "unet + spectral norm discriminator" in t.gan.description
    t.fit()
    train(resolve_config(stage, tiny(cut_out, "max_steps=2", "checkpoint.every=2", *common)))
    train(resolve_config(stage, tiny(cut_out, "max_steps=4", *common)))
    ref, cut = read_csv(ref_out / "train.csv"), read_csv(cut_out / "train.csv")
    assert [int(r["step"]) for r in cut] == [1, 2, 3, 4]
    assert {"g_adv", "d_loss", "l1"} <= set(ref[-1])
    for a, b in zip(ref[2:], cut[2:], strict=True):
        for key in ("loss", "g_adv", "d_loss", "l1"):
            assert float(b[key]) == pytest.approx(float(a[key]), rel=1e-6, abs=1e-9), key


def test_lazy_r1_r2_penalises_every_kth_discriminator_step(tmp_path, tiny, monkeypatch):
    import flowmapsr.training.trainer as trainer_mod

    gammas = []
    real_loss = trainer_mod.discriminator_step_loss

    def spy(disc, real, fake, source=None, gamma=1.0):
        gammas.append(gamma)
        return real_loss(disc, real, fake, source, gamma)

    monkeypatch.setattr(trainer_mod, "discriminator_step_loss", spy)
    base = train(resolve_config("flowmapsr-stage1-fm", tiny(tmp_path / "s1", "max_steps=1")))
    cfg = resolve_config(
        "flowmapsr-stage4-adversarial",
        tiny(
            tmp_path / "s4",
            "max_steps=3",
            f"init_from={base}",
            "adversarial.disc.depth=2",
            "adversarial.disc.channels=8",
            "adversarial.lora.rank=2",
            "adversarial.r_every=2",
        ),
    )
    t = Trainer(cfg)
    seen = []
    for _ in range(3):
        logs = t.train_step()
        seen.append("r1" in logs and "r2" in logs)
    assert seen == [True, False, True]  # steps 0 and 2 carry the penalty ...
    assert gammas == [2.0, 0.0, 2.0]  # ... with γ · r_every (γ = 1 in the preset)


def _cli(out: Path, tiny_args: list[str], max_steps: int) -> subprocess.Popen:
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    args = [
        sys.executable,
        "-m",
        "flowmapsr.cli.train",
        "flowmapsr-stage2-distill",
        *tiny_args,
        f"max_steps={max_steps}",
        "checkpoint.every=3",
        "optim.warmup_steps=0",
    ]
    return subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _wait_for_step(proc, out: Path, step: int, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if (out / "train.csv").is_file() and max(_losses(out), default=0) >= step:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training exited early: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"step {step} not reached in {timeout} s")


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_same_next_loss(tmp_path, tiny):
    """A run killed with SIGKILL mid-way resumes from its last checkpoint exactly."""
    ref_out, cut_out = tmp_path / "ref", tmp_path / "cut"
    # Never stopped (run to completion).
    ref = _cli(ref_out, tiny(ref_out), 9)
    assert ref.wait(timeout=180) == 0, ref.stderr.read().decode()[-2000:]
    # Killed once the log shows step ≥ 4 (past the checkpoint at 3), at an arbitrary point.
    cut = _cli(cut_out, tiny(cut_out), 9)
    _wait_for_step(cut, cut_out, 4)
    os.kill(cut.pid, signal.SIGKILL)
    cut.wait(timeout=30)
    ck = latest_checkpoint(cut_out / "checkpoints")
    assert ck is not None
    resumed_at = read_json(ck, "state.json")["step"]
    assert resumed_at in (3, 6)
    again = _cli(cut_out, tiny(cut_out), 9)
    assert again.wait(timeout=180) == 0, again.stderr.read().decode()[-2000:]
    a, b = _losses(ref_out), _losses(cut_out)
    assert sorted(b) == list(range(1, 10))  # rows after the checkpoint were replaced
    for step in range(resumed_at + 1, 10):
        assert b[step] == a[step], (step, a[step], b[step])


@pytest.mark.parametrize("objective", ["eulerian", "shortcut"])
def test_bf16_autocast_keeps_losses_in_float32(tmp_path, tiny, objective):
    """mixed_precision=bf16 (CPU autocast here, GPUs in practice) with a JVP objective."""
    out = tmp_path / objective
    cfg = resolve_config(
        "flowmapsr-stage3-guidance",
        tiny(
            out,
            "max_steps=2",
            "mixed_precision=bf16",
            f"objective.name={objective}",
            "data.batch_size=4",
        ),
    )
    train(cfg)
    losses = _losses(out)
    assert sorted(losses) == [1, 2] and all(v == v for v in losses.values())


def test_resume_with_another_network_shape_is_one_line(tmp_path, tiny):
    """Changing a shape key (net.channels) and resuming into the same folder names the keys and
    the two ways out, before any tensor is read; changing the lr still resumes."""
    train(
        resolve_config("flowmapsr-stage1-fm", tiny(tmp_path, "max_steps=2", "checkpoint.every=2"))
    )
    wider = tiny(tmp_path, "max_steps=4", "net.channels=24")
    with pytest.raises(ValueError) as err:
        Trainer(resolve_config("flowmapsr-stage1-fm", wider)).fit()
    msg = str(err.value)
    assert "\n" not in msg and "net.channels:" in msg and "→ 24" in msg
    assert "another output_dir" in msg and "set these keys back" in msg
    t = Trainer(
        resolve_config("flowmapsr-stage1-fm", tiny(tmp_path, "max_steps=3", "optim.lr=3e-4"))
    )
    t.fit()
    assert t.step == 3
