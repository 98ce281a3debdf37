"""A training checkpoint as a pipeline folder, without resuming the run.

``export_checkpoint(CKPT, OUT)`` (CLI: ``flowmapsr export CKPT -o OUT``) writes the checkpoint's
EMA generator (``--weights model``: the raw one), with the stage's LoRA adapters, in the
pipeline-folder format a finished stage exports, so that an intermediate checkpoint of a long
run can be upscaled with and benchmarked (``flowmapsr bench --methods flowmapsr:model=OUT``)
while the run goes on or after it was stopped. Only ``config.json``, ``state.json`` and the
weight file are read (safetensors, no pickle); the optimiser and discriminator states are not
needed. The export's ``info`` says which checkpoint it came from and is marked incomplete, so a
recipe never mistakes it for a finished stage.
"""

from __future__ import annotations

from pathlib import Path

from flowmapsr.codecs import build_codec
from flowmapsr.config import from_dict, to_dict
from flowmapsr.inference.pipeline import PipelineConfig, SRPipeline
from flowmapsr.nets import build_net
from flowmapsr.nets.lora import attach_lora
from flowmapsr.training import checkpoint as ckpt
from flowmapsr.training.config import TrainConfig

WEIGHTS = ("ema", "model")


def pipeline_config(config: TrainConfig, info: dict) -> PipelineConfig:
    """The pipeline settings of a stage's export (shared by the trainer and this module)."""
    out = PipelineConfig(
        net=to_dict(config.net),
        codec=to_dict(config.codec),
        lora=config.adversarial.lora if config.adversarial.enabled else config.lora,
        lora_scale=config.export.lora_scale,
        scales=list(config.data.scales),
        steps=config.export.steps,
        guidance=config.export.guidance,
        source_noise=config.data.source_noise,
        # A consistency-distilled map is trained only towards r = 0: it samples by re-jumping.
        solver="consistency" if config.objective.name == "consistency" else "flowmap",
        info=info,
    )
    if config.objective.name == "ftd":  # FluxSR trains v(x, t) = u(x, t, t) from z_L at T_L
        out.solver, out.source_time = "euler", config.objective.ftd.t_low
    return out


def find_checkpoint(path: str | Path) -> Path:
    """A checkpoint folder from ``path``: the folder itself, or the latest one in a run folder
    (``<run>/checkpoints``) or a ``checkpoints`` folder."""
    p = Path(path).expanduser()
    if (p / "state.json").is_file():
        return p
    for root in (p / "checkpoints", p):
        found = ckpt.latest_checkpoint(root)
        if found is not None:
            return found
    raise FileNotFoundError(f"{p}: no checkpoint here (a step-XXXXXXXX folder or a run folder)")


def export_checkpoint(path: str | Path, out: str | Path, weights: str = "ema") -> Path:
    """Write the generator of the checkpoint at ``path`` as a pipeline folder ``out``."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    folder = find_checkpoint(path)
    config = from_dict(TrainConfig, ckpt.read_json(folder, "config.json"))
    step = int(ckpt.read_json(folder, "state.json")["step"])
    net = build_net(config.net)
    lora = config.adversarial.lora if config.adversarial.enabled else config.lora
    if lora is not None:
        attach_lora(net, lora)
    tensors = ckpt.read_tensors(folder, weights)
    if weights == "ema":  # the EMA module holds the network as ``shadow`` plus a counter
        tensors = {k[7:]: v for k, v in tensors.items() if k.startswith("shadow.")}
    try:
        net.load_state_dict(tensors, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ValueError(
            f"checkpoint {folder}: its {weights} weights do not fit its config ({first})"
        ) from None
    codec = build_codec(config.codec)
    codec_file = folder / "codec.safetensors"
    if codec_file.is_file():  # a codec without a weights folder travels in the checkpoint
        codec.load_state_dict(ckpt.read_tensors(folder, "codec"), strict=True)
    info = {
        "stage": config.name,
        "step": step,
        "objective": config.objective.name,
        "complete": False,
        "checkpoint": str(folder),
        "weights": weights,
        "degradation": config.data.degradation,
    }
    pipe = SRPipeline(net.eval(), pipeline_config(config, info), codec=codec)
    return pipe.save_pretrained(out)
