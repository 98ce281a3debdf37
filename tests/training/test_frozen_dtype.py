"""``frozen_dtype``: a LoRA stage keeps the weights nothing trains (its base network, the frozen
teacher, the codec) in bf16 and the trainable ones in float32; a real-size preset reads its
pretrained base in bf16 from the weights folder; without autocast it is a one-line error."""

import diffusers
import pytest
import torch

from flowmapsr.codecs.vae import tiny_kl_config
from flowmapsr.config import ConfigError
from flowmapsr.inference.pipeline import SRPipeline
from flowmapsr.nets.unet_adapter import TINY
from flowmapsr.testing.text_encoders import write_text_encoders
from flowmapsr.training.checkpoint import latest_checkpoint, read_json, read_tensors
from flowmapsr.training.presets import resolve_config
from flowmapsr.training.runlog import read_csv
from flowmapsr.training.trainer import Trainer, build_network


def _weights_folder(tmp_path):
    """A diffusers folder as the sd21 preset reads it (unet/, vae/, text encoder, tokenizer),
    tiny random weights in float32."""
    folder = tmp_path / "sd21-base"
    torch.manual_seed(0)
    diffusers.UNet2DConditionModel.from_config(TINY["sd21"]()).save_pretrained(folder / "unet")
    diffusers.AutoencoderKL.from_config(tiny_kl_config()).save_pretrained(folder / "vae")
    (folder / "model_index.json").write_text("{}")
    write_text_encoders(folder, "sd21", 32, None, tokens=8)
    return folder


def _sd21(folder, out, *extra):
    return resolve_config(
        "sd21-flowmapsr",
        [
            f"net.pretrained={folder}",
            f"codec.pretrained={folder}",
            "net.prompts.tokens=8",
            f"output_dir={out}",
            "data.kind=synthetic",
            "data.roots=[]",
            "data.degradation=bicubic",
            "data.crop_size=64",
            "data.batch_size=1",
            "data.scales=[4]",
            "data.synthetic_count=4",
            "codec.tile=null",
            "validation.hr_dir=''",
            "validation.lr_dir=''",
            "validation.count=1",
            "validation.crop=64",
            "validation.every=0",
            "validation.steps=[1]",
            "checkpoint.every=2",
            "progress=none",
            "tensorboard=false",
            "optim.warmup_steps=1",
            "log_every=1",
            *extra,
        ],
    )


def test_the_sd21_preset_reads_its_lora_base_in_bf16_and_trains_only_float32(tmp_path):
    folder = _weights_folder(tmp_path)
    out = tmp_path / "run"
    cfg = _sd21(folder, out, "max_steps=2", "frozen_dtype=bfloat16")
    # The LoRA base is read from the folder in bf16 (never whole in float32) ...
    net, *_ = build_network(cfg)
    assert {p.dtype for p in net.backbone.parameters()} == {torch.bfloat16}
    # ... a full fine-tune would start from rounded weights, so it reads float32.
    full, *_ = build_network(_sd21(folder, out, "frozen_dtype=bfloat16", "lora=null"))
    assert {p.dtype for p in full.backbone.parameters()} == {torch.float32}

    t = Trainer(cfg)
    trainable = {n for n, p in t.net.named_parameters() if p.requires_grad}
    assert any("lora_" in n for n in trainable) and any("conv_in" in n for n in trainable)
    for n, p in t.net.named_parameters():
        assert p.dtype == (torch.float32 if p.requires_grad else torch.bfloat16), n
    assert {p.dtype for p in t.codec.parameters()} == {torch.bfloat16}
    # The EMA averages the float32 trainable weights and shares the bf16 frozen ones.
    shadow = dict(t.ema.shadow.named_parameters())
    for n, p in t.net.named_parameters():
        assert shadow[n].dtype == p.dtype
        if not p.requires_grad:
            assert shadow[n].data_ptr() == p.data_ptr(), n
    export = t.fit()
    for state in t.opt.state.values():
        assert all(v.dtype == torch.float32 for v in state.values() if v.is_floating_point())
    losses = [float(r["loss"]) for r in read_csv(out / "train.csv")]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))

    # The checkpoint holds what trains, not the base the folder gives back.
    ck = latest_checkpoint(out / "checkpoints")
    frozen = {n for n, p in t.net.named_parameters() if not p.requires_grad}
    saved = set(read_tensors(ck, "model"))
    assert saved and not saved & frozen and trainable <= saved
    assert not {k.removeprefix("shadow.") for k in read_tensors(ck, "ema")} & frozen
    assert read_json(ck, "state.json")["base"]["unsaved_tensors"] == len(frozen)

    # It resumes from that checkpoint in the same dtypes and repeats the uninterrupted run.
    t2 = Trainer(_sd21(folder, out, "max_steps=3", "frozen_dtype=bfloat16"))
    t2.fit()
    assert t2.step == 3
    assert all(
        p.dtype == (torch.float32 if p.requires_grad else torch.bfloat16)
        for p in t2.net.parameters()
    )
    ref = tmp_path / "ref"
    Trainer(_sd21(folder, ref, "max_steps=3", "frozen_dtype=bfloat16")).fit()
    last = {int(r["step"]): float(r["loss"]) for r in read_csv(out / "train.csv")}
    want = {int(r["step"]): float(r["loss"]) for r in read_csv(ref / "train.csv")}
    assert last[3] == pytest.approx(want[3], rel=1e-6)

    # Other weights in the folder than the checkpoint was trained over: one line, no resume.
    torch.manual_seed(1)
    diffusers.UNet2DConditionModel.from_config(TINY["sd21"]()).save_pretrained(folder / "unet")
    with pytest.raises(ValueError, match="checksum") as err:
        Trainer(_sd21(folder, out, "max_steps=4", "frozen_dtype=bfloat16")).fit()
    assert "\n" not in str(err.value)
    pipe = SRPipeline.from_pretrained(export)
    y = pipe.upscale_tensor(torch.rand(1, 3, 16, 16), scale=4, steps=1)
    assert y.shape == (1, 3, 64, 64) and torch.isfinite(y).all()


def test_frozen_dtype_without_autocast_is_one_line(tmp_path, tiny):
    with pytest.raises(ConfigError, match="frozen_dtype") as err:
        resolve_config(
            "flowmapsr-stage1-fm",
            tiny(tmp_path / "a", "frozen_dtype=bfloat16", "mixed_precision=no"),
        )
    assert "\n" not in str(err.value)
    # "auto" resolves to "no" on a CPU: the trainer refuses before building anything.
    cfg = resolve_config("flowmapsr-stage1-fm", tiny(tmp_path / "b", "frozen_dtype=bfloat16"))
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="mixed_precision=bf16"):
            Trainer(cfg)


def test_the_small_net_trains_its_lora_over_a_bf16_base(tmp_path, tiny):
    """The same switch on the pixel-space small net (the adversarial stage's LoRA)."""
    cfg = resolve_config(
        "flowmapsr-stage1-fm",
        tiny(
            tmp_path / "run",
            "max_steps=2",
            "mixed_precision=bf16",
            "frozen_dtype=bfloat16",
            "lora={rank: 2, alpha: 2.0}",
        ),
    )
    t = Trainer(cfg)
    low = [n for n, p in t.net.named_parameters() if p.dtype == torch.bfloat16]
    assert low and all("lora_" not in n for n in low)
    t.fit()
    assert t.step == 2
