"""The training step's extra loss terms (flowmapsr.training.loss_terms) and their configuration."""

import json
import os
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest
import torch
from torch import nn

from flowmapsr.config import ConfigError
from flowmapsr.objectives.adl import adl_loss, as_tokens, capture_tokens
from flowmapsr.objectives.perceptual import PerceptualConfig
from flowmapsr.training.config import TrainConfig
from flowmapsr.training.loss_terms import (
    INPUTS,
    TERMS,
    TermConfig,
    TermInputs,
    build_terms,
    term_configs,
)
from flowmapsr.training.presets import resolve_config
from flowmapsr.training.runlog import read_csv
from flowmapsr.training.trainer import Trainer, train

REFERENCE = Path(__file__).parent / "data" / "stage4_terms_reference.json"


def _tiny_train_config() -> TrainConfig:
    cfg = TrainConfig()
    cfg.adversarial.disc.channels, cfg.adversarial.disc.depth = 8, 2
    return cfg


@pytest.mark.parametrize("name", sorted(TERMS))
def test_every_registered_term_builds_is_finite_and_reaches_the_generator(name, gen):
    torch.manual_seed(0)
    # A sobel_l1 perceptual term: the same code path as LPIPS, without needing fetched weights.
    config = TermConfig(name=name, weight=0.5, perceptual=PerceptualConfig(kind="sobel_l1"))
    term, description = TERMS[name].build(config, _tiny_train_config())
    assert term is not None and term.name == name and description
    assert term.weight == 0.5
    assert "Reference:" in (type(term).__doc__ or "")
    generator = nn.Conv2d(3, 3, 3, padding=1)  # stands in for the flow map's one-step sample
    src = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    hr = torch.rand(2, 3, 32, 32, generator=gen) * 2 - 1
    fake = generator(src)
    assert term.needs <= set(INPUTS)
    inputs = TermInputs(
        fake=fake if "fake" in term.needs else None,
        hr=hr,
        source=src if "source" in term.needs else None,
        # the generator's output read as a layer's tokens (B, H·W, C), as a hook records it
        tokens={term.layers: [as_tokens(fake)]} if "tokens" in term.needs else None,
    )
    loss, logs = term(inputs)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert logs and all(isinstance(v, float) for v in logs.values())
    (term.weight * loss).backward()
    grad = generator.weight.grad
    assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_pixel_terms_are_l1_and_mse(gen):
    fake, hr = torch.rand(2, 3, 8, 8, generator=gen), torch.rand(2, 3, 8, 8, generator=gen)
    x = TermInputs(fake=fake, hr=hr, source=None)
    l1, logs1 = TERMS["l1"].build(TermConfig(name="l1"), None)[0](x)
    l2, logs2 = TERMS["l2"].build(TermConfig(name="l2", label="mse_px"), None)[0](x)
    assert torch.equal(l1, (fake - hr).abs().mean()) and set(logs1) == {"l1"}
    assert torch.equal(l2, (fake - hr).pow(2).mean()) and set(logs2) == {"mse_px"}


def test_adversarial_keys_map_onto_gan_and_perceptual_terms():
    cfg = resolve_config("flowmapsr-stage4-adversarial", [])
    got = [(t.name, t.weight) for t in term_configs(cfg)]
    # the adversarial keys first, then the preset's extra terms (l1)
    assert got == [("gan", cfg.adversarial.weight), ("perceptual", 1.0), ("l1", 1.0)]
    assert term_configs(cfg)[1].perceptual == cfg.adversarial.perceptual
    cfg = resolve_config(
        "flowmapsr-stage4-adversarial", ["adversarial.perceptual.kind=none", "terms=[]"]
    )
    terms, notes = build_terms(cfg)
    assert [t.name for t in terms] == ["gan"] and ("perceptual", "none") in notes
    assert term_configs(resolve_config("flowmapsr-stage2-distill", [])) == []


def test_stage4_step_gives_the_losses_and_logs_of_the_code_before_the_registry(tmp_path, tiny):
    """Three train_steps of a stage-4 config (anchor + gan + perceptual, NFE 1 or 2, D step with
    R1/R2) against the logs the pre-registry step (commit f492920) printed for the same seed.

    The reference was written by that commit's Trainer with this exact config; the new code gave
    a byte-identical JSON on the machine that wrote it. Compared with rel 1e-6 so that another
    CPU's kernels (summation order) do not fail it; names and their order exactly (train.csv).
    The stage-1 net concatenates the source, as that commit's preset did."""
    s1 = tiny(tmp_path / "s1", "max_steps=1", "net.concat_source=true")
    base = train(resolve_config("flowmapsr-stage1-fm", s1))
    cfg = resolve_config(
        "flowmapsr-stage4-adversarial",
        tiny(
            tmp_path / "s4",
            "max_steps=3",
            f"init_from={base}",
            "adversarial.disc.depth=2",
            "adversarial.disc.channels=8",
            "adversarial.lora.rank=2",
            "adversarial.nfe=[1,2]",
            "adversarial.perceptual.kind=sobel_l1",
            # that commit's adversarial preset (the preset moved to a U-Net discriminator,
            # LPIPS-vgg and l1 on 2026-12-04)
            "adversarial.disc.kind=patch",
            "adversarial.disc.spectral_norm=false",
            "adversarial.weight=0.05",
            "adversarial.perceptual.weight=0.1",
            "adversarial.r_every=1",
            "terms=[]",
        ),
    )
    t = Trainer(cfg)
    rows = [t.train_step() for _ in range(3)]
    reference = json.loads(REFERENCE.read_text())
    for got, ref in zip(rows, reference, strict=True):
        assert list(got) == list(ref)
        for key, value in ref.items():
            assert got[key] == pytest.approx(value, rel=1e-6, abs=1e-12), key


def test_a_perceptual_and_l1_fine_tune_without_a_gan(tmp_path, tiny):
    out = tmp_path / "ft"
    cfg = resolve_config(
        "flowmapsr-stage2-distill",
        tiny(
            out,
            "max_steps=2",
            "terms=[{name: perceptual, weight: 0.1, perceptual: {kind: sobel_l1}}, {name: l1}]",
        ),
    )
    t = Trainer(cfg)
    assert t.disc is None and t.opt_d is None
    assert [term.name for term in t.terms] == ["perceptual", "l1"]
    before = {k: v.clone() for k, v in t.net.state_dict().items()}
    t.fit()
    assert any(not torch.equal(before[k], v) for k, v in t.net.state_dict().items())
    rows = read_csv(out / "train.csv")
    assert {"anchor", "perceptual", "l1", "loss"} <= set(rows[0])
    assert "g_adv" not in rows[0] and "d_loss" not in rows[0]
    for r in rows:  # the logged loss is anchor + Σ weight·term (fp32 sums of logged values)
        total = float(r["anchor"]) + 0.1 * float(r["perceptual"]) + float(r["l1"])
        assert float(r["loss"]) == pytest.approx(total, rel=1e-5)


@pytest.mark.parametrize(
    "terms, message",
    [
        ("[{name: lpip}]", "terms[0].name must be a registered loss term (gan, perceptual, l1"),
        ("[{name: l1}, {name: gan}]", "terms[1].name: gan is the adversarial stage's term"),
        ("[{name: l1, weight: -1}]", "terms[0].weight must be a finite number ≥ 0"),
        ("[{name: adl, layers: 'blocks\\.('}]", "terms[0].layers must be auto, a backbone name"),
    ],
)
def test_bad_terms_are_one_line_config_errors(terms, message):
    with pytest.raises(ConfigError) as err:
        resolve_config("flowmapsr-stage2-distill", [f"terms={terms}"])
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_perceptual_term_on_latents_is_refused():
    with pytest.raises(ConfigError, match=r"terms\[0\].name: a perceptual term needs images"):
        resolve_config("tiny-sdxl-flowmapsr", ["terms=[{name: perceptual}]"])


@pytest.mark.parametrize(
    "terms, message",
    [
        ("[{name: lpip}]", "terms[0].name must be a registered loss term"),
        ("[{name: adl, layers: 'blocks.(['}]", "terms[0].layers must be auto, a backbone name"),
    ],
)
def test_dry_run_rejects_a_bad_term_in_one_line(terms, message):
    proc = subprocess.run(
        [sys.executable, "-m", "flowmapsr", "train", "flowmapsr-stage2-distill",
         f"terms={terms}", "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def _adl_trainer(tmp_path, tiny, weight: float, *more) -> Trainer:
    terms = f"terms=[{{name: adl, weight: {weight}}}]"
    cfg = resolve_config("flowmapsr-stage1-fm", tiny(tmp_path, "max_steps=1", terms, *more))
    return Trainer(cfg)


def _grads(net) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def test_adl_term_is_adl_loss_of_the_one_step_forward_and_its_gradient_reaches_the_net(
    tmp_path, tiny
):
    """The step's ``adl`` log equals :func:`adl_loss` computed by hand on a second run of the
    same one-step forward, and the step's gradient is the anchor's plus ``weight`` × ADL's."""
    weight = 0.5
    t = _adl_trainer(tmp_path / "a", tiny, weight, "net.blocks=2")
    step = t.step_module
    assert [term.name for term in t.terms] == ["adl"] and step.token_layers == ["auto"]
    fb = t.flow_batch(t.data.next(t.scale_gen))

    t.net.zero_grad()
    loss, logs, _ = step("g", fb, torch.Generator().manual_seed(5), t.ema.shadow, 1)
    loss.backward()
    g_step = _grads(t.net)
    assert not any(b._forward_hooks for b in t.net.blocks)  # hooks removed after the step

    t.net.zero_grad()
    with capture_tokens(t.net, "auto") as tokens:
        step.one_step_sample(fb.src, fb.cond.source, 1)
    assert len(tokens) == 2  # one per residual block, one network call
    adl = adl_loss(tokens).mean()
    assert logs["adl"] == float(adl.detach())
    assert logs["loss"] == pytest.approx(logs["anchor"] + weight * logs["adl"], rel=1e-6)
    adl.backward()
    g_adl = _grads(t.net)
    assert sum(float(g.abs().sum()) for g in g_adl.values()) > 0

    t.net.zero_grad()
    res = t.objective(t.net, fb, generator=torch.Generator().manual_seed(5), teacher=t.ema.shadow)
    res.loss.backward()
    g_anchor = _grads(t.net)
    assert float(res.loss.detach()) == logs["anchor"]
    for name, g in g_step.items():
        expect = g_anchor.get(name, torch.zeros_like(g)) + weight * g_adl.get(name, 0.0)
        torch.testing.assert_close(g, expect, rtol=1e-5, atol=1e-7, msg=name)


def test_an_adl_term_of_weight_zero_logs_adl_and_leaves_the_loss_alone(tmp_path, tiny):
    t = _adl_trainer(tmp_path, tiny, 0.0)
    fb = t.flow_batch(t.data.next(t.scale_gen))
    loss, logs, _ = t.step_module("g", fb, torch.Generator().manual_seed(5), t.ema.shadow, 1)
    assert 0.0 < logs["adl"] <= 1.0 and logs["loss"] == logs["anchor"]


def test_adl_layers_matching_no_module_fail_at_build_naming_the_pattern(tmp_path, tiny):
    cfg = resolve_config(
        "flowmapsr-stage1-fm",
        tiny(tmp_path, "max_steps=1", "terms=[{name: adl, layers: 'nothing\\.here'}]"),
    )
    with pytest.raises(ValueError) as err:
        Trainer(cfg)
    message = str(err.value)
    assert "loss term adl: layers 'nothing\\.here' match no module" in message
    assert "\n" not in message


def test_two_adl_terms_read_their_own_layers(tmp_path, tiny):
    terms = (
        "terms=[{name: adl, label: adl_all}, {name: adl, label: adl_first, layers: 'blocks\\.0'}]"
    )
    cfg = resolve_config(
        "flowmapsr-stage1-fm", tiny(tmp_path, "max_steps=1", "net.blocks=2", terms)
    )
    t = Trainer(cfg)
    with torch.no_grad():  # a fresh block adds zero (zero-init conv2): make the blocks differ
        for p in t.net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(3)))
    step = t.step_module
    fb = t.flow_batch(t.data.next(t.scale_gen))
    _, logs, _ = step("g", fb, torch.Generator().manual_seed(5), t.ema.shadow, 1)
    with torch.no_grad(), capture_tokens(t.net, r"blocks\.0") as first:
        step.one_step_sample(fb.src, fb.cond.source, 1)
    assert len(first) == 1
    assert logs["adl_first"] == pytest.approx(float(adl_loss(first).mean()), rel=1e-6)
    assert logs["adl_all"] != logs["adl_first"]


def test_stage4_with_an_adl_term_logs_an_adl_column(tmp_path, tiny):
    base = train(resolve_config("flowmapsr-stage1-fm", tiny(tmp_path / "s1", "max_steps=1")))
    out = tmp_path / "s4"
    cfg = resolve_config(
        "flowmapsr-stage4-adversarial",
        tiny(
            out,
            "max_steps=2",
            f"init_from={base}",
            "adversarial.disc.depth=2",
            "adversarial.disc.channels=8",
            "adversarial.lora.rank=2",
            "adversarial.nfe=[2]",  # two network calls: both calls' tokens count
            "adversarial.perceptual.kind=sobel_l1",
            "terms=[{name: adl, weight: 0.01}]",
        ),
    )
    t = Trainer(cfg)
    assert [term.name for term in t.terms] == ["gan", "perceptual", "adl"]
    t.fit()
    rows = read_csv(out / "train.csv")
    assert len(rows) == 2 and {"anchor", "g_adv", "perceptual", "adl", "loss"} <= set(rows[0])
    adv = cfg.adversarial
    for r in rows:
        assert -1.0 <= float(r["adl"]) <= 1.0
        total = (
            adv.anchor_weight * float(r["anchor"])
            + adv.weight * float(r["g_adv"])
            + adv.perceptual.weight * float(r["perceptual"])
            + 0.01 * float(r["adl"])
        )
        assert float(r["loss"]) == pytest.approx(total, rel=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")
@pytest.mark.parametrize(
    "mode, preset", [("ddp", "flowmapsr-stage2-distill"), ("fsdp", "tiny-sd21-flowmapsr")]
)
def test_adl_term_under_two_processes(tmp_path, tiny, mode, preset):
    """The hooks sit on the inner net: under DDP (small net) and CPU FSDP2 (a tiny SD 2.1 UNet,
    its transformer blocks) the run logs a finite ``adl`` on every step."""
    out = tmp_path / mode
    more = ["max_steps=2", "terms=[{name: adl, weight: 0.01}]"]
    opts = (
        tiny(out, *more)
        if preset.startswith("flowmapsr-")
        else [f"output_dir={out}", "progress=none", "tensorboard=false", "log_every=1", *more]
    )
    launch = ["--config_file", str(FSDP_CPU)] if mode == "fsdp" else DDP_LAUNCH
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", CUDA_VISIBLE_DEVICES="")
    cmd = [shutil.which("accelerate"), "launch", *launch, "-m", "flowmapsr.cli.train", preset]
    proc = subprocess.run([*cmd, *opts], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(out / "train.csv")
    assert [int(r["step"]) for r in rows] == [1, 2]
    for r in rows:
        assert -1.0 <= float(r["adl"]) <= 1.0
        total = float(r["anchor"]) + 0.01 * float(r["adl"])
        assert float(r["loss"]) == pytest.approx(total, rel=1e-5)  # train.csv: 6 digits


DDP_LAUNCH = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
DDP_LAUNCH += ["--mixed_precision", "no", "--dynamo_backend", "no"]
FSDP_CPU = resources.files("flowmapsr") / "configs" / "accelerate" / "fsdp-cpu-2proc.yaml"
