"""Typed configuration of a training run (one stage of a recipe).

Each section configures one component: :class:`DataConfig` the batch stream,
:class:`OptimConfig` the optimiser/scheduler/EMA, :class:`ValidationConfig` the periodic bench
check, :class:`CheckpointConfig` the checkpoints, :class:`AdversarialConfig` the RpGAN + LoRA
stage. The backbone (a :class:`~flowmapsr.nets.base.NetConfig` chosen by ``net.type`` from the
:data:`~flowmapsr.nets.NETS` registry) and the objective
(:class:`~flowmapsr.objectives.base.ObjectiveConfig`) keep their configs beside their code.
Presets are YAML files over these defaults (``flowmapsr/configs``); overrides are strict.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Literal

from flowmapsr.codecs import CodecConfig, codec_config
from flowmapsr.config import ConfigError
from flowmapsr.nets import NetConfig, net_config
from flowmapsr.nets.discriminator import DiscriminatorConfig
from flowmapsr.nets.lora import LoRAConfig
from flowmapsr.objectives.base import ObjectiveConfig
from flowmapsr.objectives.perceptual import PerceptualConfig
from flowmapsr.paths.time_sampling import PAIR_SAMPLERS
from flowmapsr.training.loss_terms import TERMS, TermConfig


@dataclass
class DataConfig:
    # synthetic: procedural images made from the seed (tests, smoke runs, fresh clones);
    # folders: HR image folders under ``roots`` (relative paths resolve against the current dir);
    # pairs: the shards of ``flowmapsr pairs generate`` under ``roots`` (teacher images, their
    # degraded LR and the noise they came from; no degradation is drawn, the LR is stored)
    # latents: the shards of ``flowmapsr latents build`` under ``roots`` (HR crops and the codec's
    # posteriors of HR and source, drawn and encoded once; scale and degradation fixed per entry)
    kind: Literal["synthetic", "folders", "pairs", "latents"] = "synthetic"
    roots: list[str] = field(default_factory=list)
    crop_size: int = 128  # HR crop side; a multiple of every scale × the net's size multiple
    batch_size: int = 8  # per process, per micro-batch
    scales: list[int] = field(default_factory=lambda: [4])  # one drawn per batch
    degradation: str = "bicubic"  # preset of flowmapsr.data.degradations (realesrgan|mild|bicubic)
    # Fraction of samples degraded by the plain MATLAB-bicubic preset instead: a model trained on
    # real-world degradations alone over-smooths clean bicubic LR (Set5/Set14-style inputs).
    clean_fraction: float = 0.0
    negatives: bool = False  # build hr_neg (mildly re-degraded HR) for guidance
    source_noise: float = 0.0  # σ of Gaussian noise on the path's source (cond.source stays clean)
    # What sits at t = 1: lr = the upsampled degraded LR (SR); noise = N(0, I) of the HR shape,
    # drawn per sample from (seed, epoch, index) — a noise → image model (FluxSR's teacher).
    source: Literal["lr", "noise"] = "lr"
    synthetic_count: int = 512  # images in the synthetic set
    augment: bool = True
    num_workers: int = 0  # DataLoader workers (0: load in the training process)
    seed: int = 0


@dataclass
class OptimConfig:
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.9, 0.99])
    weight_decay: float = 0.0
    warmup_steps: int = 100
    schedule: Literal["constant", "cosine"] = "constant"  # after warm-up
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr
    grad_clip: float = 1.0  # max global grad norm (0 = off)
    ema_decay: float = 0.999


@dataclass
class ValidationConfig:
    every: int = 500  # optimizer steps between validations (0 = only at the end)
    hr_dir: str = ""  # HR bench folder ("" = synthetic images)
    lr_dir: str = ""  # matching LR folder (same file names); "" = bicubic LR from the HR
    count: int = 4  # images
    crop: int = 256  # centre HR crop side (multiple of scale × the net's size multiple)
    scale: int = 4
    steps: list[int] = field(default_factory=lambda: [1, 2])  # NFE values evaluated
    guidance: list[float] = field(default_factory=lambda: [1.0])  # ω values evaluated
    lora_scales: list[float] = field(default_factory=lambda: [1.0])  # adversarial stage only
    grid: bool = True  # write a sample grid PNG
    niqe: bool = False  # also NIQE (no-reference) of every setting, via flowmapsr.metrics


@dataclass
class CheckpointConfig:
    every: int = 500  # optimizer steps between checkpoints (0 = only at the end)
    keep: int = 2  # most recent checkpoints kept


@dataclass
class AdversarialConfig:
    """Stage 4: RpGAN + R1/R2 on a small discriminator, LoRA on the generator."""

    enabled: bool = False
    disc: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)
    gamma: float = 1.0  # R1/R2 weight: γ/2·(R1 + R2)
    r_every: int = 1  # lazy R1/R2: penalise every r_every-th D step with γ·r_every (1 = every step)
    weight: float = 0.05  # generator adversarial-loss weight
    anchor_weight: float = 1.0  # self-distillation anchor (the stage's objective)
    nfe: list[int] = field(default_factory=lambda: [1])  # generator output X(src; 1 → 0) NFE(s)
    omega: float = 1.0  # guidance scale of the adversarial sample
    disc_lr: float = 2e-4
    disc_betas: list[float] = field(default_factory=lambda: [0.0, 0.99])
    perceptual: PerceptualConfig = field(default_factory=PerceptualConfig)


@dataclass
class ExportConfig:
    steps: int = 1  # default NFE stored in the pipeline
    guidance: float = 1.0  # default ω stored in the pipeline
    lora_scale: float = 1.0


@dataclass
class TrainConfig:
    name: str = "run"
    output_dir: str = "runs/run"
    init_from: str = ""  # pipeline folder to start from ("" = fresh weights); its net wins
    # Frozen teacher of objectives that need one (consistency): a pipeline folder, or "" = the
    # network this stage starts from (init_from), copied before training changes it.
    teacher_from: str = ""
    resume: str = "auto"  # auto (latest checkpoint in output_dir) | none | a checkpoint folder
    max_steps: int = 1000  # optimizer steps
    max_minutes: float = 0.0  # also stop (checkpoint + export) after this much wall time; 0 = off
    grad_accum: int = 1
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"  # auto: bf16 on GPU
    # dtype of the weights nothing trains: a LoRA stage's base network, the frozen teacher, the
    # codec. "bfloat16" halves their memory (a pretrained base is read from its folder in bf16);
    # trainable weights, their gradients, Adam's moments and the EMA stay float32. Needs
    # autocast (mixed_precision bf16 / fp16), which computes those layers in low precision anyway.
    frozen_dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    seed: int = 0
    log_every: int = 10
    progress: Literal["tqdm", "rich", "none"] = "tqdm"
    tensorboard: bool = True
    # Any registered backbone, picked by ``net.type`` (default and untagged: the small net).
    net: NetConfig = field(default_factory=lambda: net_config({}))
    # Where the flow runs (flowmapsr.codecs): identity = pixels, vae / tiny_vae = latents. The
    # trainer encodes targets and sources without gradients; image-space losses decode.
    codec: CodecConfig = field(default_factory=lambda: codec_config({}))
    # LoRA adapters (peft) trained instead of the full network in a non-adversarial stage
    # (large backbones); None = full fine-tuning. The adversarial stage uses adversarial.lora.
    lora: LoRAConfig | None = None
    objective: ObjectiveConfig = field(default_factory=lambda: ObjectiveConfig(name="fm"))
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    # Extra loss terms on the one-step sample X(src; 1 → 0), added to the objective as
    # weight·loss (flowmapsr.training.loss_terms: perceptual, l1, l2, adl; the gan term is the
    # adversarial stage's, set by adversarial.*), e.g. [{name: perceptual, weight: 0.1}, {name: l1}]
    terms: list[TermConfig] = field(default_factory=list)
    export: ExportConfig = field(default_factory=ExportConfig)


def check_config(config: TrainConfig) -> TrainConfig:
    """``config`` if its numbers can train; else a one-line :class:`ConfigError` naming the key.

    Called where presets and overrides are resolved, so ``--dry-run`` rejects what the run would
    reject later (or, worse, accept: ``max_steps=-5`` exported an untrained model with exit 0,
    ``data.batch_size=0`` was a ZeroDivisionError, a NaN ``lr`` trained to NaN weights).
    """

    def need(key: str, ok: bool, rule: str) -> None:
        if not ok:
            value = config
            for part in key.split("."):
                value = getattr(value, part)
            raise ConfigError(f"{key} must be {rule}, got {value!r}")

    def positive_finite(x: float) -> bool:
        return math.isfinite(x) and x > 0

    need("max_steps", config.max_steps >= 1, "≥ 1")
    need("grad_accum", config.grad_accum >= 1, "≥ 1")
    need("log_every", config.log_every >= 1, "≥ 1")
    need("max_minutes", math.isfinite(config.max_minutes) and config.max_minutes >= 0, "≥ 0")
    need("data.batch_size", config.data.batch_size >= 1, "≥ 1")
    need("data.crop_size", config.data.crop_size >= 1, "≥ 1")
    need("data.synthetic_count", config.data.synthetic_count >= 1, "≥ 1")
    need("data.scales", bool(config.data.scales) and min(config.data.scales) >= 1, "scales ≥ 1")
    need("data.clean_fraction", 0 <= config.data.clean_fraction <= 1, "in [0, 1]")
    need("data.source", config.data.source in ("lr", "noise"), "lr or noise")
    if config.data.source == "noise":
        # There is no LR to condition on: a concatenated source would be the noise itself.
        need("net.concat_source", not getattr(config.net, "concat_source", False),
             "false with data.source=noise (there is no LR condition)")  # fmt: skip
        need(
            "data.kind", config.data.kind != "pairs", "synthetic or folders with data.source=noise"
        )
    need("frozen_dtype", config.frozen_dtype in ("float32", "bfloat16", "float16"),
         "float32, bfloat16 or float16")  # fmt: skip
    # "auto" is checked again where it resolves (the Trainer: "no" on a CPU).
    need("frozen_dtype", config.frozen_dtype == "float32" or config.mixed_precision != "no",
         "float32 with mixed_precision=no (without autocast, fp32 activations would meet "
         "low-precision weights)")  # fmt: skip
    need("data.kind", config.data.kind != "latents" or config.codec.type != "identity",
         "not latents with the identity codec (a cache holds a VAE's posteriors)")  # fmt: skip
    need("optim.lr", positive_finite(config.optim.lr), "a finite number > 0")
    need("optim.warmup_steps", config.optim.warmup_steps >= 0, "≥ 0")
    need("optim.ema_decay", 0 <= config.optim.ema_decay <= 1, "in [0, 1]")
    need("validation.every", config.validation.every >= 0, "≥ 0 (0 = only at the end)")
    need("checkpoint.every", config.checkpoint.every >= 0, "≥ 0 (0 = only at the end)")
    need("checkpoint.keep", config.checkpoint.keep >= 1, "≥ 1")
    from flowmapsr.objectives import OBJECTIVES

    names = ", ".join(OBJECTIVES)
    need("objective.name", config.objective.name in OBJECTIVES, f"a registered objective ({names})")
    # Measured (tests/nets/test_gradient_checkpointing.py): a backward through a JVP's tangent
    # fails in torch.utils.checkpoint ("a different number of tensors was saved ...").
    need(
        "net.gradient_checkpointing",
        not (
            getattr(config.net, "gradient_checkpointing", False)
            and OBJECTIVES[config.objective.name].uses_jvp
        ),
        f"false with objective {config.objective.name} (its JVP cannot go through recomputed "
        "blocks)",
    )
    needs_teacher = OBJECTIVES[config.objective.name].needs_frozen_teacher
    has_teacher = bool(config.init_from or config.teacher_from)
    why = f"objective {config.objective.name} distils a frozen teacher"
    need("init_from", not needs_teacher or has_teacher, f"set (or teacher_from): {why}")
    latent = config.codec.type != "identity"
    need("adversarial.enabled", not (config.adversarial.enabled and latent),
         "false with a latent codec (the discriminator stage runs on pixels only)")  # fmt: skip
    need("lora", not (config.lora is not None and config.adversarial.enabled),
         "unset in the adversarial stage (it trains adversarial.lora)")  # fmt: skip
    d = config.data
    need("data.crop_size", all(d.crop_size % s == 0 for s in d.scales),
         f"a multiple of every scale in data.scales {d.scales}")  # fmt: skip
    v = config.validation
    need("validation.crop", v.crop >= 1 and v.crop % max(v.scale, 1) == 0,
         f"a multiple of validation.scale ({v.scale})")  # fmt: skip
    if d.kind != "pairs" and getattr(d, "source", "lr") == "lr":
        from flowmapsr.data.degradations.config import load_degradation_config

        try:  # a shipped name or a YAML file, read as the run would read it
            load_degradation_config(d.degradation)
        except ConfigError as err:
            raise ConfigError(f"data.degradation must be a degradation preset ({err})") from None
    cons = config.objective.consistency
    need("objective.consistency.iqa_model", cons.iqa <= 0 or bool(cons.iqa_model),
         "a local CLIP folder when objective.consistency.iqa > 0")  # fmt: skip
    samplers = ", ".join(sorted(PAIR_SAMPLERS))
    need("objective.pairs.sampler", config.objective.pairs.sampler in PAIR_SAMPLERS,
         f"a registered pair sampler ({samplers})")  # fmt: skip
    need("adversarial.disc_lr", positive_finite(config.adversarial.disc_lr), "a finite number > 0")
    known = ", ".join(TERMS)
    for i, term in enumerate(config.terms):
        key = f"terms[{i}]"
        if term.name not in TERMS:
            raise ConfigError(
                f"{key}.name must be a registered loss term ({known}), got {term.name!r}"
            )
        if term.name == "gan":  # its discriminator, optimiser and LoRA are the adversarial stage
            raise ConfigError(
                f"{key}.name: gan is the adversarial stage's term; set adversarial.enabled=true "
                "and adversarial.weight instead"
            )
        if not (math.isfinite(term.weight) and term.weight >= 0):
            raise ConfigError(f"{key}.weight must be a finite number ≥ 0, got {term.weight!r}")
        if term.name == "adl":
            from flowmapsr.objectives.adl import layer_pattern

            try:  # whether it matches a module is known once the network is built (TrainStep)
                re.compile(layer_pattern(term.layers))
            except re.error as err:
                raise ConfigError(
                    f"{key}.layers must be auto, a backbone name or a regular expression, "
                    f"got {term.layers!r} ({err})"
                ) from None
        if term.name == "perceptual" and latent:
            raise ConfigError(
                f"{key}.name: a perceptual term needs images; the run's codec is "
                f"'{config.codec.type}' (pixel space only)"
            )
    return config
