"""The Accelerate trainer: one straight-line loop for every stage of the FlowMapSR recipe.

One optimizer step = ``grad_accum`` micro-batches (DDP gradient sync only on the last one),
gradient clipping, an optimizer/scheduler step, an EMA update. Stages 1–3 minimise the
configured objective (fm / shortcut / lagrangian / eulerian, guidance on or off); with
``adversarial.enabled`` the generator's LoRA adapters minimise
``anchor_weight·objective + weight·RpGAN_G(X(src; 1 → 0)) [+ perceptual]`` and a small
discriminator minimises RpGAN + γ/2·(R1 + R2) on the same batch. These are configured loss
terms (:mod:`flowmapsr.training.loss_terms`); ``terms:`` adds others (perceptual, ℓ1/ℓ2) on the
same one-step sample, with or without the GAN.

Runs on the CPU, one GPU or many (``accelerate launch``; DDP, or FSDP through an accelerate
config file), bf16 autocast on GPUs (``mixed_precision: auto``). The EMA network is the teacher
of the self-distillation targets and the network that is validated and exported.
Everything random in a step comes from per-process generators whose states are checkpointed
(see :mod:`flowmapsr.training.checkpoint`), so a resumed run repeats the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn

from flowmapsr.codecs import build_codec, describe_codec
from flowmapsr.config import ConfigError, save_json, to_dict
from flowmapsr.data.latents import check_run_codec, sample_cached
from flowmapsr.flowmap import PROMPT_POS, Condition
from flowmapsr.inference.pipeline import SRPipeline
from flowmapsr.inference.solvers import SOLVERS, time_grid
from flowmapsr.nets import build_net, describe_net, net_config
from flowmapsr.nets.diffusers_common import RUNTIME_FIELDS, torch_dtype
from flowmapsr.nets.lora import attach_lora, has_lora, merged_copy
from flowmapsr.objectives import FlowBatch, build_objective
from flowmapsr.objectives.adl import capture_tokens, find_layers, layer_pattern
from flowmapsr.objectives.adversarial import discriminator_step_loss
from flowmapsr.training import checkpoint as ckpt
from flowmapsr.training.config import TrainConfig
from flowmapsr.training.data import BatchStream, TrainBatch, mix_seed
from flowmapsr.training.ema import EMA
from flowmapsr.training.export import pipeline_config
from flowmapsr.training.loss_terms import TermInputs, build_terms
from flowmapsr.training.runlog import CSVLog, Progress, TensorBoardLog
from flowmapsr.training.validation import load_validation_set, run_validation


class Float32Output(nn.Module):
    """Runs a network and returns its output in float32.

    Under bf16 autocast the network computes in bf16, but the objectives mix its output with
    float32 targets; casting at the boundary keeps the loss arithmetic in float32.
    """

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, *args, **kwargs):
        return self.net(*args, **kwargs).float()


class TrainStep(nn.Module):
    """Network + objective + extra loss terms (:mod:`.loss_terms`) behind one ``forward``.

    DDP needs every gradient-carrying network call inside one forward of the wrapped module;
    the objective calls the network several times (targets, shortcut halves), so the wrapper
    is what DDP wraps. ``mode='g'``: the generator's loss ``w_a·objective + Σ w_k·term_k``
    (``w_a`` = ``adversarial.anchor_weight`` in the adversarial stage, else 1), the one-step
    sample computed once when any term needs it (or the tokens of its forward: that forward runs
    inside :func:`~flowmapsr.objectives.adl.capture_tokens`, one capture per distinct ``layers``
    setting); ``mode='d'``: the discriminator loss of the ``gan`` term.

    The token hooks go on ``self.net``, the inner network: a DDP/FSDP wrapper wraps this module,
    not the net, and the layer regexes admit wrapper prefixes inside it (``module.``,
    ``_orig_mod.``, ``_fsdp_wrapped_module.``).
    """

    def __init__(self, net, objective, config: TrainConfig, terms=(), frozen=None):
        super().__init__()
        self.net, self.objective = net, objective
        self.terms = nn.ModuleList(terms)
        self.gan = next((t for t in self.terms if t.name == "gan"), None)
        # The distinct layer settings of the terms that read tokens (a dict keeps their order).
        self.token_layers = list(dict.fromkeys(t.layers for t in self.terms if "tokens" in t.needs))
        self.needs_fake = bool(self.token_layers) or any("fake" in t.needs for t in self.terms)
        for term in self.terms:
            # A pattern that matches no module would record nothing: refuse it at build, with
            # the pattern, rather than at the first step's empty ADL.
            if "tokens" in term.needs and not find_layers(net, term.layers):
                raise ValueError(
                    f"loss term {term.label}: layers '{term.layers}' match no module of the "
                    f"network ({type(net).__name__}; pattern '{layer_pattern(term.layers)}', "
                    "re.fullmatch over named_modules() names)"
                )
        self.frozen = frozen  # the frozen teacher (objectives with needs_frozen_teacher)
        self.config = config
        # How the export samples (solver, source time): the one-step sample does the same.
        self.sampling = pipeline_config(config, {})

    def one_step_sample(self, src_path, src_clean, nfe: int) -> torch.Tensor:
        """``X(src; 1 → 0)`` with ``nfe`` jumps, with gradients (the terms' sample)."""
        n = src_path.shape[0]
        cond = Condition(
            prompt=torch.full((n,), PROMPT_POS, dtype=torch.long, device=src_path.device),
            omega=torch.full(
                (n,), self.config.adversarial.omega, device=src_path.device, dtype=src_path.dtype
            ),
            source=src_clean,
        )
        pc = self.sampling
        grid = time_grid(nfe, device=src_path.device, start=pc.source_time)
        return SOLVERS[pc.solver](self.net, src_path, grid, cond)

    def forward(
        self,
        mode: str,
        batch: FlowBatch,
        generator,
        teacher,
        nfe: int = 1,
        fake: torch.Tensor | None = None,
        gamma: float | None = None,
    ):
        if mode == "d":
            gamma = self.gan.gamma if gamma is None else gamma
            res = discriminator_step_loss(self.gan.disc, batch.hr, fake, batch.cond.source, gamma)
            return res.loss, res.logs, None
        autocast = torch.is_autocast_enabled(batch.hr.device.type)
        net = Float32Output(self.net) if autocast else self.net
        teacher = Float32Output(teacher) if autocast and teacher is not None else teacher
        frozen = self.frozen
        frozen = Float32Output(frozen) if autocast and frozen is not None else frozen
        res = self.objective(net, batch, generator=generator, teacher=teacher, frozen=frozen)
        loss, logs = res.loss, dict(res.logs)
        fake_out = None
        if len(self.terms):
            adv = self.config.adversarial
            if adv.enabled:
                loss = adv.anchor_weight * loss
            logs["anchor"] = logs.pop("loss")
            tokens = None
            if self.needs_fake:
                with contextlib.ExitStack() as stack:
                    tokens = {
                        layers: stack.enter_context(capture_tokens(self.net, layers))
                        for layers in self.token_layers
                    }
                    fake_out = self.one_step_sample(batch.src, batch.cond.source, nfe)
            inputs = TermInputs(
                fake=fake_out, hr=batch.hr, source=batch.cond.source, tokens=tokens or None
            )
            for term in self.terms:
                t_loss, t_logs = term(inputs)
                loss = loss + term.weight * t_loss
                logs.update(t_logs)
            logs["loss"] = float(loss.detach())
        return loss, logs, fake_out


def _lr_lambda(config: TrainConfig):
    o = config.optim

    def f(step: int) -> float:
        if o.warmup_steps > 0 and step < o.warmup_steps:
            return (step + 1) / o.warmup_steps
        if o.schedule == "cosine":
            span = max(config.max_steps - o.warmup_steps, 1)
            p = min(max(step - o.warmup_steps, 0) / span, 1.0)
            return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p))
        return 1.0

    return f


def build_network(config: TrainConfig) -> tuple[nn.Module, TrainConfig, str, nn.Module | None]:
    """The backbone (fresh or from ``init_from``), the config with the net actually used, a
    note for the log, and ``init_from``'s codec (None for a fresh start)."""
    if not config.init_from:
        net_cfg = config.net
        if (
            config.frozen_dtype != "float32"
            and stage_lora(config) is not None
            and getattr(net_cfg, "pretrained", None)
            and hasattr(net_cfg, "load_dtype")
        ):
            # Only the LoRA's frozen base is read in low precision: fully trained weights would
            # start from rounded values (cast_frozen keeps trainable parameters float32).
            net_cfg = replace(net_cfg, load_dtype=config.frozen_dtype)
        return build_net(net_cfg), config, "fresh", None
    folder = Path(config.init_from).expanduser()
    pipe = SRPipeline.from_pretrained(folder)
    net_cfg = net_config(pipe.config.net, f"{folder}: net")
    note = f"init_from {folder}"
    net = pipe.net
    if has_lora(net):
        # A LoRA stage's export (e.g. FlowSR stage 1 on a large backbone) starts the next stage
        # as the network it computes: adapters folded in at the export's scale.
        net = merged_copy(net).requires_grad_(True)
        note += f" (LoRA merged at scale {pipe.config.lora_scale:g})"
    # The export's net wins, except for how it computes (gradient checkpointing, attention
    # kernel): those are this stage's choice, when its config names the same backbone type.
    stage_net = config.net
    if getattr(stage_net, "type", None) == getattr(net_cfg, "type", None) and hasattr(
        net, "set_runtime"
    ):
        runtime = {k: getattr(stage_net, k) for k in RUNTIME_FIELDS if hasattr(stage_net, k)}
        changed = {k: v for k, v in runtime.items() if getattr(net_cfg, k) != v}
        if changed:
            net.set_runtime(**changed)
            net_cfg = replace(net_cfg, **changed)
            note += " (" + ", ".join(f"{k}={v}" for k, v in changed.items()) + " from this stage)"
    return net.train(), replace(config, net=net_cfg), note, pipe.codec


def cast_frozen(module: nn.Module, dtype: torch.dtype) -> int:
    """Frozen floating-point parameters of ``module`` → ``dtype``, trainable ones → float32 (the
    optimiser's master weights), in place (the same ``Parameter`` objects, so optimisers and the
    EMA built afterwards see them). Returns the bytes the frozen parameters now take."""
    frozen_bytes = 0
    for p in module.parameters():
        if not p.is_floating_point():
            continue
        want = torch.float32 if p.requires_grad else dtype
        if p.dtype != want:
            p.data = p.data.to(want)
        if not p.requires_grad:
            frozen_bytes += p.numel() * p.element_size()
    return frozen_bytes


def base_checksum(net: nn.Module, names: frozenset[str]) -> float:
    """A float64 sum of ``Σ|w| + Σ w`` over the parameters ``names`` (the frozen base): the same
    weights give the same number (to reduction order); other weights, almost surely not."""
    total = 0.0
    with torch.no_grad():
        for n, p in net.named_parameters():
            if n in names:
                q = p.detach().double()
                total += float(q.abs().sum()) + float(q.sum())
    return total


def stage_lora(config: TrainConfig):
    """The LoRA config this stage trains (the adversarial stage's, or ``lora``), or None."""
    return config.adversarial.lora if config.adversarial.enabled else config.lora


def codec_is_state(config: TrainConfig, codec: nn.Module) -> bool:
    """Whether the codec's weights go into checkpoints: a codec with weights that no file
    gives back (a tiny random one); a pretrained VAE is read from its folder again."""
    has_weights = next(codec.parameters(), None) is not None
    return has_weights and getattr(config.codec, "pretrained", None) is None


def build_frozen_teacher(config: TrainConfig, net: nn.Module) -> tuple[nn.Module, str]:
    """The frozen teacher: ``teacher_from``'s network, or a copy of ``net`` as the stage starts
    (before LoRA and training touch it); eval mode, no gradients."""
    if config.teacher_from:
        folder = Path(config.teacher_from).expanduser()
        pipe = SRPipeline.from_pretrained(folder)
        if has_lora(pipe.net):
            raise ValueError(
                f"teacher_from={folder}: a teacher with LoRA adapters is not supported"
            )
        teacher, note = pipe.net, f"teacher_from {folder}"
    else:
        teacher, note = copy.deepcopy(net), f"frozen copy of the start ({config.init_from})"
    return teacher.eval().requires_grad_(False), note


class Trainer:
    """Builds everything from a :class:`TrainConfig` and runs it; see the module docstring."""

    def __init__(self, config: TrainConfig):
        try:
            from accelerate import Accelerator
            from accelerate.utils import DistributedDataParallelKwargs, DistributedType
        except ImportError:  # a slim (inference) install
            raise ImportError("training needs accelerate: pip install 'flowmapsr[train]'") from None

        self.config = config
        mp = config.mixed_precision
        if mp == "auto":
            mp = "bf16" if torch.cuda.is_available() else "no"
        if config.frozen_dtype != "float32" and mp == "no":
            raise ConfigError(
                f"frozen_dtype={config.frozen_dtype} needs autocast, but mixed_precision "
                "resolved to 'no' here (set mixed_precision=bf16)"
            )
        if config.adversarial.enabled and config.grad_accum != 1:
            raise ValueError("adversarial stage: grad_accum must be 1")
        # A recipe builds one Accelerator per stage in one process; accelerate keeps process-wide
        # singleton state that refuses a second Accelerator with other settings (e.g. another
        # mixed precision). Reset that part, keep the process group (PartialState).
        from accelerate.state import AcceleratorState, GradientState

        AcceleratorState._reset_state(reset_partial_state=False)
        GradientState._reset_state()
        self.acc = Accelerator(
            mixed_precision=mp,
            cpu=not torch.cuda.is_available(),
            kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        )
        self.out = Path(config.output_dir).expanduser()
        self.is_main = self.acc.is_main_process
        dev = self.acc.device
        rank, world = self.acc.process_index, self.acc.num_processes
        # Same initial weights on every process (the EMA copy is taken before DDP broadcasts).
        torch.manual_seed(mix_seed(config.seed, 1))

        # Models -------------------------------------------------------------------------------
        net, self.config, self.init_note, init_codec = build_network(config)
        config = self.config
        if (
            init_codec is not None
            and codec_is_state(config, init_codec)
            and (init_codec.config.type == config.codec.type)
        ):
            # A codec without a weights folder (a tiny random one) is the start's own: the next
            # stage must run in the latent space the previous one (and its teacher) learned.
            codec = init_codec
        else:
            codec = build_codec(config.codec)
        self.codec = codec.to(dev).eval().requires_grad_(False)
        self.objective = build_objective(config.objective).to(dev)
        if config.codec.type != "identity":
            self.objective.set_codec(self.codec)
        self.frozen, self.teacher_note = None, "none"
        if self.objective.needs_frozen_teacher:
            self.frozen, self.teacher_note = build_frozen_teacher(config, net)
            self.frozen.to(dev)
        lora = stage_lora(config)
        if lora is not None:
            attach_lora(net, lora)
        if config.frozen_dtype != "float32":
            low = torch_dtype(config.frozen_dtype)
            # Before the EMA (it shares the frozen tensors) and before sharding / optimisers.
            for module in (net, self.frozen, self.codec):
                if module is not None:
                    cast_frozen(module, low)
        net.to(dev)
        self.net = net
        fsdp_asked = os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
        fsdp = fsdp_asked or self.acc.distributed_type == DistributedType.FSDP
        self.ema = EMA(net, decay=config.optim.ema_decay, share_frozen=not fsdp)
        # A LoRA stage over a pretrained weights folder: its frozen base is that folder's, read
        # again at every start (like a pretrained VAE), so checkpoints hold only what trains —
        # without this every SDXL checkpoint rewrote the 2.6 B frozen weights twice (model and
        # EMA). A checksum in state.json catches a folder whose weights changed in between.
        self.unsaved: frozenset[str] = frozenset()
        self.base_checksum = None
        if stage_lora(config) is not None and not config.init_from:
            pretrained = getattr(config.net, "pretrained", None)
            if pretrained:
                self.unsaved = frozenset(
                    n for n, p in net.named_parameters() if not p.requires_grad
                )
                self.base_checksum = base_checksum(net, self.unsaved)
        # Built here, after the EMA copy: the discriminator's initial weights come from the
        # global generator in this order (bit-identical runs across the terms refactor).
        terms, notes = build_terms(config)
        for term in terms:
            term.to(dev)
        self.terms = terms
        self.gan = next((t for t in terms if t.name == "gan"), None)
        self.disc = self.gan.disc if self.gan is not None else None
        self.perceptual_note = "; ".join(n for k, n in notes if k == "perceptual") or "none"
        self.terms_note = ", ".join(f"{t.weight:g}·{t.description}" for t in terms) or "none"
        self.step_module = TrainStep(net, self.objective, config, terms, self.frozen)

        # FSDP on the CPU: accelerate 1.x enables FSDP only on an accelerator device (with
        # cpu=True it silently falls back to DDP, MULTI_CPU), so there the trainer shards with
        # torch's own FSDP2 ``fully_shard`` (gloo) — before the optimisers are built, because
        # sharding replaces the parameters. On GPUs accelerate's prepare does the sharding.
        self.cpu_fsdp = (
            fsdp_asked
            and self.acc.distributed_type != DistributedType.FSDP
            and self.acc.num_processes > 1
        )
        if self.cpu_fsdp:
            from torch.distributed.fsdp import fully_shard

            # Frozen parameters (codec, frozen teacher, a LoRA stage's base weights) stay whole:
            # they are also used outside the step's forward (encoding), where a sharded one
            # would not be gathered; there is no gradient of theirs to shard.
            frozen_params = {p for p in self.step_module.parameters() if not p.requires_grad}
            reshard = os.environ.get("FSDP_RESHARD_AFTER_FORWARD", "true").lower() == "true"
            fully_shard(
                self.step_module, reshard_after_forward=reshard, ignored_params=frozen_params
            )
        self.sharded = self.cpu_fsdp or self.acc.distributed_type == DistributedType.FSDP
        if self.cpu_fsdp:
            n_sharded = sum(1 for p in self.step_module.parameters() if hasattr(p, "full_tensor"))
            self.acc.print(
                f"  distributed: FSDP2 fully_shard on the CPU (gloo), {world} processes, "
                f"{n_sharded} sharded parameter tensors, reshard_after_forward={reshard}"
            )

        # Optimisers -----------------------------------------------------------------------------
        o = config.optim
        g_params = [p for p in net.parameters() if p.requires_grad]
        g_params += [p for p in self.objective.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(
            g_params, lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay
        )
        self.sched = torch.optim.lr_scheduler.LambdaLR(self.opt, _lr_lambda(config))
        self.opt_d = self.sched_d = None
        if self.gan is not None:
            self.opt_d = torch.optim.AdamW(
                self.disc.parameters(),
                lr=self.gan.disc_lr,
                betas=self.gan.disc_betas,
                weight_decay=0.0,
            )
            self.sched_d = torch.optim.lr_scheduler.LambdaLR(self.opt_d, _lr_lambda(config))
        if self.cpu_fsdp:  # already sharded: accelerate (MULTI_CPU) would wrap it in DDP
            self.model = self.step_module
            if self.gan is not None:
                self.opt, self.opt_d = self.acc.prepare(self.opt, self.opt_d)
            else:
                self.opt = self.acc.prepare(self.opt)
        elif self.gan is not None:
            self.model, self.opt, self.opt_d = self.acc.prepare(
                self.step_module, self.opt, self.opt_d
            )
        else:
            self.model, self.opt = self.acc.prepare(self.step_module, self.opt)

        torch.manual_seed(mix_seed(config.seed, 4, rank))  # per-process from here on

        # Data and randomness ----------------------------------------------------------------------
        self.data = BatchStream(config.data, dev, rank, world)
        pairs_codec = getattr(self.data.dataset, "codec", None)
        if pairs_codec is not None and pairs_codec.get("type") != config.codec.type:
            raise ValueError(
                f"data.roots: the teacher pairs are in codec '{pairs_codec.get('type')}' space, "
                f"the run's codec is '{config.codec.type}' (set codec.type to match)"
            )
        if config.data.kind == "latents":  # the cache's codec (config and weights) or an error
            check_run_codec(self.data.dataset, config.codec, self.codec)
        self.gen = torch.Generator(device=dev).manual_seed(mix_seed(config.seed, 2, rank))
        self.scale_gen = torch.Generator().manual_seed(mix_seed(config.seed, 3))
        self.generators = {"train": self.gen, "scale": self.scale_gen}
        self.step = 0

    # -- checkpoints ------------------------------------------------------------------------
    def modules(self) -> dict[str, nn.Module]:
        mods = {"model": self.net, "ema": self.ema, "objective": self.objective}
        if self.disc is not None:
            mods["disc"] = self.disc
        if self.frozen is not None:  # saved so that a resume never depends on init_from's files
            mods["teacher"] = self.frozen
        if codec_is_state(self.config, self.codec):
            mods["codec"] = self.codec
        return mods

    def optimizers(self) -> dict:
        opts = {"opt": (self.opt, self.sched)}
        if self.opt_d is not None:
            opts["opt_d"] = (self.opt_d, self.sched_d)
        return opts

    def save_checkpoint(self) -> Path:
        writer = ckpt.CheckpointWriter(self.out / "checkpoints", self.step)
        if self.is_main:
            writer.begin()
        self.acc.wait_for_everyone()
        writer.tensors(f"rng-rank{self.acc.process_index}", ckpt.rng_tensors(self.generators))
        # Under FSDP every process gathers the full states (collectives, same order on every
        # rank); the main process writes them. Without sharding only the main process reads
        # its (already full) states, as before.
        if self.is_main or self.sharded:
            mod_states = {
                n: ckpt.full_tensors(self._saved_state(n, m.state_dict()))
                for n, m in self.modules().items()
            }
            opt_states = {
                n: ckpt.full_optimizer_state(o) for n, (o, _) in self.optimizers().items()
            }
        if self.is_main:
            for name, state in mod_states.items():
                writer.tensors(name, state)
            metas = {}
            for name, (_, sched) in self.optimizers().items():
                tensors, meta = ckpt.optimizer_to_flat(opt_states[name])
                writer.tensors(f"{name}.optim", tensors)
                metas[name] = {"optimizer": meta, "scheduler": sched.state_dict()}
            writer.json(
                "state.json",
                {
                    "step": self.step,
                    "data": self.data.state(),
                    "optimizers": metas,
                    "world_size": self.acc.num_processes,
                    **self._base_state(),
                },
            )
            writer.json("config.json", to_dict(self.config))
        self.acc.wait_for_everyone()
        if self.is_main:
            writer.commit(self.config.checkpoint.keep)
        self.acc.wait_for_everyone()
        return writer.final

    def load_checkpoint(self, folder: Path) -> None:
        state = ckpt.read_json(folder, "state.json")
        # Every process reads the full tensors; under FSDP they are scattered into the
        # current shards (a collective per DTensor), so any mode loads any mode's checkpoint.
        self._check_base(folder, state)
        for name, mod in self.modules().items():
            full = ckpt.read_tensors(folder, name)
            current = mod.state_dict()
            # Keys a checkpoint may leave out: the frozen base read from its folder again.
            absent = set(current) - set(full)
            if absent:
                unsaved = set(current) - set(self._saved_state(name, current))
                if not absent <= unsaved:
                    raise ValueError(
                        f"resume: {folder}/{name}.safetensors lacks {len(absent - unsaved)} "
                        f"trained tensors (e.g. {sorted(absent - unsaved)[0]})"
                    )
                full = {**{k: current[k] for k in absent}, **full}
            if self.sharded:
                full = ckpt.shard_state_like(full, current)
            mod.load_state_dict(full, strict=True)
        for name, (opt, sched) in self.optimizers().items():
            meta = state["optimizers"][name]
            full = ckpt.optimizer_from_flat(
                ckpt.read_tensors(folder, f"{name}.optim"), meta["optimizer"]
            )
            if self.sharded:
                full = ckpt.shard_optimizer_state(full, opt)
            opt.load_state_dict(full)
            sched_state = dict(meta["scheduler"])
            # The schedule itself is a function of the config; only its counters are state.
            sched_state["lr_lambdas"] = [None] * len(opt.param_groups)
            sched.load_state_dict(sched_state)
        rank = self.acc.process_index
        rng_file = f"rng-rank{rank}"
        if (folder / f"{rng_file}.safetensors").is_file():
            ckpt.restore_rng(ckpt.read_tensors(folder, rng_file), self.generators)
        else:
            # More processes than the checkpoint had (N → M > N): rank k ≥ N has no stream to
            # continue. It gets fresh streams seeded by (seed, rank, step) — a run cannot repeat
            # an N-process run with M processes anyway — and the shared scale stream (the same
            # on every rank) from rank 0's file. Fewer processes (N → M < N) just leave files.
            saved = ckpt.read_tensors(folder, "rng-rank0")
            step = int(state["step"])
            torch.manual_seed(mix_seed(self.config.seed, 4, rank, step))
            self.gen.manual_seed(mix_seed(self.config.seed, 2, rank, step))
            self.scale_gen.set_state(saved["gen_scale"])
            print(
                f"resume: checkpoint {folder} has no RNG state for process {rank} (saved with "
                f"{state.get('world_size')} processes); it starts fresh random streams",
                file=sys.stderr,
            )
        self.data.load_state(state["data"])
        self.step = int(state["step"])

    def maybe_resume(self) -> Path | None:
        r = self.config.resume
        if r == "none":
            return None
        folder = ckpt.latest_checkpoint(self.out / "checkpoints") if r == "auto" else Path(r)
        if folder is None:
            return None
        if not (folder / "state.json").is_file():
            raise FileNotFoundError(f"resume={r}: {folder} is not a checkpoint folder")
        self.check_resumable(folder)
        self.load_checkpoint(folder)
        return folder

    #: Config sections that decide the shapes of the saved tensors: a change in any of them makes
    #: the checkpoint unloadable (other keys, e.g. the lr, may change across a resume).
    SHAPE_KEYS = ("net", "lora", "adversarial.enabled", "adversarial.disc", "adversarial.lora")
    # Keys under SHAPE_KEYS that change how the net computes or where its weights are read from,
    # not its shape (a moved weights folder is checked by the base checksum instead).
    NOT_SHAPE = frozenset(
        {*(f"net.{k}" for k in RUNTIME_FIELDS), "net.pretrained", "net.load_dtype"}
    )

    def _saved_state(self, name: str, state: dict) -> dict:
        """``state`` of module ``name`` as checkpoints hold it: without the frozen base that is
        read from its weights folder again (:attr:`unsaved`; the EMA's keys are ``shadow.*``)."""
        if not self.unsaved or name not in ("model", "ema"):
            return state
        prefix = "shadow." if name == "ema" else ""
        return {k: v for k, v in state.items() if k.removeprefix(prefix) not in self.unsaved}

    def _base_state(self) -> dict:
        if not self.unsaved:
            return {}
        return {
            "base": {
                "pretrained": str(self.config.net.pretrained),
                "unsaved_tensors": len(self.unsaved),
                "checksum": self.base_checksum,
            }
        }

    def _check_base(self, folder: Path, state: dict) -> None:
        """One line when the checkpoint left the frozen base out but this run's base differs."""
        saved = state.get("base")
        if not saved:
            return
        now = self.base_checksum
        if now is None or not math.isclose(now, saved["checksum"], rel_tol=1e-9, abs_tol=1e-6):
            raise ValueError(
                f"resume: checkpoint {folder} was trained over the frozen base of "
                f"{saved['pretrained']} (checksum {saved['checksum']!r}); this run's base "
                f"{getattr(self.config.net, 'pretrained', None)} has checksum {now!r}"
            )

    def check_resumable(self, folder: Path) -> None:
        """``ValueError`` (one line) when ``folder``'s run had another network shape than this one.

        Compared on the two configs before any tensor is read, so the user gets the keys that
        differ (old → new) instead of a page of ``size mismatch`` lines from ``load_state_dict``.
        """
        if not (folder / "config.json").is_file():
            return  # an older checkpoint without its config: load_state_dict still checks
        old = ckpt.read_json(folder, "config.json")
        new = to_dict(self.config)
        diffs = [
            f"{key}: {a!r} → {b!r}"
            for section in self.SHAPE_KEYS
            for key, a, b in _differences(section, _dig(old, section), _dig(new, section))
            if key not in self.NOT_SHAPE
        ]
        if diffs:
            raise ValueError(
                f"resume: checkpoint {folder} was written with another network shape "
                f"({'; '.join(diffs)}); train into another output_dir, or set these keys back"
            )

    # -- pieces of a step ---------------------------------------------------------------------
    def flow_batch(self, tb: TrainBatch) -> FlowBatch:
        """The step's batch in the flow's space: a latent codec encodes targets and sources
        without gradients (sampling codecs draw from the step generator), or a latent cache's
        stored posteriors are sampled (``data.kind: latents``); source noise is added in that
        space, the condition keeps the clean source."""
        if tb.noise is not None:
            # Teacher pairs (data.kind: pairs, FluxSR): already in the teacher codec's space;
            # re-encoding would not give z_0 back (encode(decode(z)) ≠ z for a VAE).
            return FlowBatch(
                hr=tb.z0, src=tb.zl, noise=tb.noise, hr_image=tb.hr, cond=Condition(source=tb.zl)
            )
        sigma = self.config.data.source_noise
        hr, src, hr_neg, hr_image = tb.hr, tb.src, tb.hr_neg, None
        if tb.latents is not None:
            # A latent cache (data.kind: latents): the stored posteriors, sampled from the step
            # generator in the order encoding draws below; the encoder does not run.
            with torch.no_grad():
                hr, hr_neg, src = sample_cached(self.codec, tb.latents, self.gen)
            hr_image = tb.hr
        elif self.config.codec.type != "identity":
            with torch.no_grad():
                g = self.gen

                def enc(x):
                    return None if x is None else self.codec.encode(x, generator=g).float()

                hr_image, hr, hr_neg = tb.hr, enc(tb.hr), enc(tb.hr_neg)
                if self.config.data.source == "noise":
                    # A latent noise → image teacher: ε is Gaussian in the latent space (pixel
                    # noise through the encoder is not), drawn from the step's generator.
                    src = torch.randn(hr.shape, generator=g, device=hr.device)
                else:
                    src = enc(tb.src)
        clean = src
        if sigma > 0:
            src = src + sigma * torch.randn(src.shape, generator=self.gen, device=src.device)
        return FlowBatch(
            hr=hr, src=src, hr_neg=hr_neg, cond=Condition(source=clean), hr_image=hr_image
        )

    def pipeline(self) -> SRPipeline:
        c = self.config
        info = {
            "stage": c.name,
            "step": self.step,
            "objective": c.objective.name,
            "complete": True,
            "max_minutes": c.max_minutes,
            "degradation": self.data.description,
            "init": self.init_note,
            "perceptual": self.perceptual_note,
            "teacher": self.teacher_note,
        }
        distance = getattr(self.objective, "distance", None)
        if distance is not None:
            info["distance"] = distance.description
        return SRPipeline(self.ema.shadow, pipeline_config(c, info), codec=self.codec)

    def validate(self) -> dict:
        c = self.config
        lora = c.validation.lora_scales if c.adversarial.enabled else None
        # Low-precision frozen weights beside float32 trainable ones compute only under autocast.
        mixed = c.frozen_dtype != "float32"
        with self.acc.autocast() if mixed else contextlib.nullcontext():
            vals = run_validation(
                self.pipeline(),
                self.vset,
                c.validation,
                self.out / "samples" / f"step-{self.step:08d}.png",
                seed=c.seed,
                lora_scales=lora,
            )
        return {"step": self.step, **vals}

    def train_step(self) -> dict:
        c = self.config
        adv = c.adversarial
        logs_sum: dict[str, float] = {}
        self.opt.zero_grad(set_to_none=True)
        hr_px, scale = 0, 0
        for micro in range(c.grad_accum):
            tb = self.data.next(self.scale_gen)
            hr_px += tb.hr.shape[0] * tb.hr.shape[-1] * tb.hr.shape[-2]
            scale = tb.scale
            fb = self.flow_batch(tb)
            nfe = 1
            if adv.enabled and len(adv.nfe) > 1:
                k = int(torch.randint(len(adv.nfe), (1,), generator=self.scale_gen))
                nfe = adv.nfe[k]
            last = micro == c.grad_accum - 1
            sync = contextlib.nullcontext() if last else self.acc.no_sync(self.model)
            with sync:
                loss, logs, fake = self.model("g", fb, self.gen, self.ema.shadow, nfe)
                self.acc.backward(loss / c.grad_accum)
            for k, v in logs.items():
                logs_sum[k] = logs_sum.get(k, 0.0) + v / c.grad_accum
        if c.optim.grad_clip > 0:
            norm = self.acc.clip_grad_norm_(
                [p for g in self.opt.param_groups for p in g["params"]], c.optim.grad_clip
            )
            logs_sum["grad_norm"] = float(norm)
        self.opt.step()
        self.sched.step()
        if self.gan is not None:  # discriminator step on the same batch's detached sample
            self.opt_d.zero_grad(set_to_none=True)
            # Lazy R1/R2 (StyleGAN2 §B): the penalty on every r_every-th step, scaled by r_every,
            # has the same expectation; its double backward is most of a CPU step's time.
            k = max(int(self.gan.r_every), 1)
            gamma = self.gan.gamma * k if self.step % k == 0 else 0.0
            d_loss, d_logs, _ = self.model("d", fb, self.gen, None, nfe, fake.detach(), gamma)
            self.acc.backward(d_loss)
            self.opt_d.step()
            self.sched_d.step()
            self.opt.zero_grad(set_to_none=True)
            logs_sum.update(d_logs)
        if self.opt_d is not None:
            self.opt_d.zero_grad(set_to_none=True)
        self.ema.update(self.net)
        self.step += 1
        logs_sum["lr"] = self.sched.get_last_lr()[0]
        logs_sum["scale"] = scale
        logs_sum["_hr_px"] = hr_px
        return logs_sum

    # -- the loop -------------------------------------------------------------------------------
    def fit(self) -> Path:
        c = self.config
        self.out.mkdir(parents=True, exist_ok=True)
        resumed = self.maybe_resume()
        log = self.acc.print
        train_csv, val_csv = CSVLog(self.out / "train.csv"), CSVLog(self.out / "val.csv")
        n_train = sum(p.numel() for p in self.net.parameters() if p.requires_grad)
        if self.is_main:
            save_json(c, self.out / "config.json")
            log(
                f"flowmapsr train [{c.name}]: objective={c.objective.name} "
                f"guidance={c.objective.guidance.enabled} adversarial={c.adversarial.enabled} "
                f"net=[{describe_net(c.net)}] "
                f"params={sum(p.numel() for p in self.net.parameters()) / 1e6:.3f}M "
                f"trainable={n_train / 1e6:.3f}M "
                f"device={self.acc.device} processes={self.acc.num_processes} "
                f"precision={self.acc.mixed_precision}"
            )
            log(
                f"  data: {c.data.kind} {c.data.roots or ''} degradation={self.data.description} "
                f"scales={c.data.scales}; init: {self.init_note}; perceptual: "
                f"{self.perceptual_note}; codec: {describe_codec(c.codec)}; "
                f"loss terms: {self.terms_note}"
            )
            distance = getattr(self.objective, "distance", None)
            if distance is not None or self.frozen is not None:
                desc = distance.description if distance is not None else "n/a"
                iqa = getattr(self.objective, "iqa_note", None)
                log(
                    f"  objective distance d = {desc}; frozen teacher: {self.teacher_note}"
                    + (f"; CLIP IQA: {iqa}" if iqa else "")
                )
            if resumed is not None:
                log(f"  resumed from {resumed} at step {self.step}")
                train_csv.truncate_after(self.step)
                val_csv.truncate_after(self.step)
        self.vset = load_validation_set(c.validation, c.seed) if self.is_main else None
        tb = TensorBoardLog(self.out / "tb", c.tensorboard and self.is_main)
        bar = Progress(c.progress, c.max_steps, self.step, c.name, enabled=self.is_main)
        window: dict[str, float] = {}
        n_window, px_window, t_window = 0, 0, time.perf_counter()
        t_start = time.monotonic()
        stop = False
        try:
            while self.step < c.max_steps and not stop:
                logs = self.train_step()
                if not math.isfinite(logs.get("loss", 0.0)):
                    raise FloatingPointError(f"step {self.step}: loss is {logs.get('loss')}")
                px_window += logs.pop("_hr_px") * self.acc.num_processes
                scale = logs.pop("scale")
                for k, v in logs.items():
                    window[k] = window.get(k, 0.0) + v
                n_window += 1
                bar.update(1, {"loss": logs.get("loss", 0.0)})
                if c.max_minutes > 0:  # every process must agree: stop if any is over time
                    flag = torch.tensor(
                        float(time.monotonic() - t_start > 60 * c.max_minutes),
                        device=self.acc.device,
                    )
                    if self.acc.num_processes > 1:
                        flag = self.acc.reduce(flag, "sum")
                    stop = bool(flag > 0)
                    if stop and self.is_main:
                        log(f"  max_minutes={c.max_minutes} reached at step {self.step}")
                end = self.step == c.max_steps or stop
                if self.step % c.log_every == 0 or end:
                    dt = time.perf_counter() - t_window
                    row = {
                        "step": self.step,
                        "epoch": self.data.consumed_epoch,
                        "scale": scale,
                        **{k: v / n_window for k, v in window.items()},
                        "sec_per_step": dt / n_window,
                        "hr_mp_per_s": px_window / dt / 1e6,
                    }
                    if self.is_main:
                        train_csv.write(row)
                        tb.scalars(row, self.step, "train")
                    window, n_window, px_window, t_window = {}, 0, 0, time.perf_counter()
                if (c.validation.every and self.step % c.validation.every == 0) or end:
                    if self.is_main:
                        vals = self.validate()
                        val_csv.write(vals)
                        tb.scalars(vals, self.step, "val")
                        log(
                            " ".join(
                                f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                for k, v in vals.items()
                            )
                        )
                    self.acc.wait_for_everyone()
                    t_window = time.perf_counter()
                if (c.checkpoint.every and self.step % c.checkpoint.every == 0) or end:
                    self.save_checkpoint()
                    t_window = time.perf_counter()
        finally:
            bar.close()
            tb.close()
        export = self.out / "export"
        if self.is_main:
            self.pipeline().save_pretrained(export)
            log(f"flowmapsr train [{c.name}]: exported {export}")
        self.acc.wait_for_everyone()
        return export


def train(config: TrainConfig) -> Path:
    """Run one training stage; returns the export folder."""
    try:
        return Trainer(config).fit()
    finally:
        sys.stdout.flush()


def _dig(tree: dict, dotted: str):
    """``tree["a"]["b"]`` for ``"a.b"``; None where a level is missing."""
    for part in dotted.split("."):
        if not isinstance(tree, dict):
            return None
        tree = tree.get(part)
    return tree


def _differences(prefix: str, a, b):
    """``(key, old, new)`` for every leaf where two nested config values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            yield from _differences(f"{prefix}.{k}", a.get(k), b.get(k))
    elif a != b and a is not None:  # a key the older config lacks is not a change
        yield prefix, a, b
