"""Checkpoints: written atomically, read without pickle, resumed exactly.

A checkpoint is a folder ``step-XXXXXXXX/`` inside ``<output_dir>/checkpoints``:

- ``<name>.safetensors`` for every module (model, ema, objective, disc …);
- ``<name>.optim.safetensors`` + the ``optimizers`` entry of ``state.json`` for every optimiser
  (tensors in safetensors, the nested structure and hyper-parameters as JSON — no pickle);
- ``rng-rank<k>.safetensors``: every RNG state of process k (torch CPU, CUDA, the trainer's
  generators); python/numpy are not used for training randomness;
- ``state.json``: step, data-order position, scheduler state; ``config.json``: the resolved config.

Atomicity: everything is written into a hidden temporary folder, then renamed into place with
``os.replace`` (one atomic rename); a reader only ever sees complete checkpoints, so a run killed
at any instant (SIGKILL included) resumes from the last complete one.
Written by hand rather than ``accelerator.save_state`` because that one pickles optimiser and
RNG states (``torch.save``) and is not atomic.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

CKPT_RE = re.compile(r"^step-(\d{8})$")


def checkpoint_name(step: int) -> str:
    return f"step-{step:08d}"


def list_checkpoints(root: str | Path) -> list[Path]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [
        p
        for p in root.iterdir()
        if p.is_dir() and CKPT_RE.match(p.name) and (p / "state.json").is_file()
    ]
    return sorted(found, key=lambda p: p.name)


def latest_checkpoint(root: str | Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


# -- optimiser state without pickle ----------------------------------------------------------
def optimizer_to_flat(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """Split ``optimizer.state_dict()`` into tensors (``state.<param>.<key>``) and JSON."""
    tensors, meta = {}, {"param_groups": state["param_groups"], "state": {}}
    for pid, entries in state["state"].items():
        meta["state"][str(pid)] = {}
        for key, value in entries.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{key}"] = value.detach().contiguous().cpu()
                meta["state"][str(pid)][key] = {"tensor": True}
            else:
                meta["state"][str(pid)][key] = {"value": value}
    return tensors, meta


def optimizer_from_flat(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state = {}
    for pid, entries in meta["state"].items():
        state[int(pid)] = {
            key: tensors[f"state.{pid}.{key}"] if spec.get("tensor") else spec["value"]
            for key, spec in entries.items()
        }
    return {"state": state, "param_groups": meta["param_groups"]}


def _json_safe(obj):
    """Scheduler state dicts hold plain numbers, plus None for lambdas."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, (int, float, str, bool)) or obj is None:
        return obj
    if torch.is_tensor(obj):
        return obj.tolist()
    return None


# -- writing ---------------------------------------------------------------------------------
class CheckpointWriter:
    """Stages a checkpoint in a temporary folder, then publishes it with one rename.

    Multi-process use: the main process calls :meth:`begin` and :meth:`commit`; every process
    writes its own ``rng-rank<k>`` file in between (a barrier separates the phases).
    """

    def __init__(self, root: str | Path, step: int):
        self.root = Path(root)
        self.step = step
        self.final = self.root / checkpoint_name(step)
        self.tmp = self.root / f".tmp-{checkpoint_name(step)}"

    def begin(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()

    def tensors(self, name: str, tensors: dict[str, torch.Tensor]) -> None:
        data = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(data, str(self.tmp / f"{name}.safetensors"))

    def json(self, name: str, obj) -> None:
        (self.tmp / name).write_text(
            json.dumps(_json_safe(obj), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )

    def commit(self, keep: int) -> Path:
        for path in self.tmp.iterdir():  # make the data durable before the rename
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        if self.final.exists():  # re-saving the same step (e.g. final == periodic)
            shutil.rmtree(self.final)
        os.replace(self.tmp, self.final)
        if keep > 0:
            for old in list_checkpoints(self.root)[:-keep]:
                shutil.rmtree(old, ignore_errors=True)
        return self.final


def read_tensors(folder: Path, name: str) -> dict[str, torch.Tensor]:
    path = folder / f"{name}.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {folder}: missing {path.name}")
    try:
        return load_file(str(path))
    except Exception as err:  # safetensors raises its own error type for a damaged file
        raise ValueError(f"{path}: not a readable safetensors file ({err})") from None


def read_json(folder: Path, name: str) -> dict:
    path = folder / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"checkpoint {folder}: missing {name}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def rng_tensors(generators: dict[str, torch.Generator]) -> dict[str, torch.Tensor]:
    """Every RNG state this process uses: torch CPU/CUDA default + the named generators."""
    out = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            out[f"torch_cuda_{i}"] = s
    for name, g in generators.items():
        out[f"gen_{name}"] = g.get_state()
    return out


def restore_rng(tensors: dict[str, torch.Tensor], generators: dict[str, torch.Generator]) -> None:
    torch.set_rng_state(tensors["torch_cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("torch_cuda_")]
        if states:
            torch.cuda.set_rng_state_all(states)
    for name, g in generators.items():
        key = f"gen_{name}"
        if key not in tensors:
            raise KeyError(f"checkpoint has no RNG state for generator '{name}'")
        g.set_state(tensors[key])


# -- sharded (FSDP2) state ---------------------------------------------------------------------
# FSDP2 (``fully_shard``) turns parameters — and so the optimiser's moment tensors — into
# DTensors, each process holding one shard. A checkpoint stays the single-process format: every
# process takes part in gathering each DTensor (``full_tensor`` is a collective, so ALL ranks
# must call these functions in the same order), the main process writes. Loading scatters the
# full tensors back into the current placements. Plain tensors pass through untouched, so a
# single-process or DDP checkpoint is byte-identical to what it was, and the files of the
# three modes are interchangeable.
def _is_dtensor(x) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(x, DTensor)


def full_tensors(state: dict) -> dict:
    """``state`` with every DTensor gathered into a full plain tensor (collective)."""
    return {k: v.full_tensor() if _is_dtensor(v) else v for k, v in state.items()}


def full_optimizer_state(opt) -> dict:
    """``opt.state_dict()`` with sharded moments gathered (collective); int param ids as today."""
    sd = opt.state_dict()
    return {"state": {p: full_tensors(s) for p, s in sd["state"].items()}, **_groups(sd)}


def _groups(sd: dict) -> dict:
    return {"param_groups": sd["param_groups"]}


def _shard_like(full: torch.Tensor, like) -> torch.Tensor:
    """``full`` scattered into ``like``'s DTensor placements (collective), else unchanged."""
    if not _is_dtensor(like) or _is_dtensor(full):
        return full
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(full.to(like.dtype), like.device_mesh, like.placements)


def shard_state_like(state: dict, current: dict) -> dict:
    """A full module state dict placed like the module's own (``current = mod.state_dict()``)."""
    return {k: _shard_like(v, current.get(k)) for k, v in state.items()}


def shard_optimizer_state(state: dict, opt) -> dict:
    """A full optimiser state dict whose per-parameter tensors of the parameter's shape are
    placed like that parameter (the moments; AdamW's scalar ``step`` stays plain)."""
    params = [p for g in opt.param_groups for p in g["params"]]
    out = {}
    for pid, entries in state["state"].items():
        p = params[int(pid)]
        out[pid] = {
            k: _shard_like(v, p) if torch.is_tensor(v) and tuple(v.shape) == tuple(p.shape) else v
            for k, v in entries.items()
        }
    return {"state": out, "param_groups": state["param_groups"]}
