"""Two CPU processes (gloo) through ``accelerate launch``; the checkpoint then loads in one.

In accelerate 1.x, ``accelerate launch --num_processes 2 --cpu`` starts ONE process (``--cpu``
selects the simple launcher, which only forks several processes through mpirun); on a machine
without GPUs, ``--multi_gpu --num_processes 2`` goes through ``torch.distributed.run`` and the
trainer's Accelerator (``cpu=True``) joins a gloo process group.

FSDP: accelerate 1.x enables FSDP only on an accelerator device (with ``cpu=True`` it runs
MULTI_CPU, i.e. DDP), so with ``configs/accelerate/fsdp-cpu-2proc.yaml`` on a CPU the trainer
shards with torch's FSDP2 ``fully_shard`` over gloo itself. The ``accelerate`` CLI must be on
PATH (e.g. ``PATH=/work/main/.venv/bin:$PATH``).
"""

import os
import shutil
import subprocess
from importlib import resources

import pytest
from safetensors import safe_open

from flowmapsr.inference.pipeline import SRPipeline
from flowmapsr.training.checkpoint import latest_checkpoint, read_json
from flowmapsr.training.presets import resolve_config
from flowmapsr.training.runlog import read_csv
from flowmapsr.training.trainer import Trainer


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")
@pytest.mark.parametrize("preset", ["flowmapsr-stage2-distill", "tiny-sd21-flowmapsr"])
def test_two_process_run_and_single_process_resume(tmp_path, tiny, preset):
    """The small net, and a tiny SD 2.1 UNet in a tiny VAE's latent space (its random codec
    travels in the checkpoint)."""
    out = tmp_path / "ddp"
    if preset.startswith("tiny-"):  # the preset is already tiny; the small net's keys differ

        def tiny(out, *more):  # noqa: F811
            return [f"output_dir={out}", "progress=none", "tensorboard=false", *more]

    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", CUDA_VISIBLE_DEVICES="")
    cmd = [
        shutil.which("accelerate"),
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "flowmapsr.cli.train",
        preset,
        *tiny(out, "max_steps=4", "checkpoint.every=2"),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "processes=2" in proc.stdout
    ck = latest_checkpoint(out / "checkpoints")
    assert read_json(ck, "state.json")["world_size"] == 2
    assert {"rng-rank0.safetensors", "rng-rank1.safetensors"} <= {p.name for p in ck.iterdir()}
    SRPipeline.from_pretrained(out / "export")
    # One process picks the 2-process checkpoint up and continues.
    t = Trainer(resolve_config(preset, tiny(out, "max_steps=6")))
    t.fit()
    assert t.step == 6
    assert [int(r["step"]) for r in read_csv(out / "train.csv")][-2:] == [5, 6]


FSDP_CPU = resources.files("flowmapsr") / "configs" / "accelerate" / "fsdp-cpu-2proc.yaml"


def _launch_fsdp(preset, *overrides):
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE", CUDA_VISIBLE_DEVICES="")
    cmd = [shutil.which("accelerate"), "launch", "--config_file", str(FSDP_CPU)]
    cmd += ["-m", "flowmapsr.cli.train", preset, *overrides]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _layout(folder):
    """{file: {key: shape}} of a checkpoint's tensor files (what must match across modes)."""
    out = {}
    for path in sorted(folder.glob("*.safetensors")):
        if path.name.startswith("rng-rank"):
            continue
        with safe_open(str(path), "pt") as f:
            out[path.name] = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    return out


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("accelerate") is None, reason="accelerate CLI not installed")
def test_fsdp_two_processes_checkpoint_resumes_in_one_and_back_in_two(tmp_path):
    """A 2-process FSDP run of the tiny SD 2.1 preset writes a checkpoint with the single-process
    layout (full tensors, same files and keys), which one process resumes (2 → 1) and exports;
    that 1-process checkpoint then resumes in 2 FSDP processes (1 → 2: rank 1 starts fresh
    random streams and says so)."""
    preset = "tiny-sd21-flowmapsr"
    out = tmp_path / "fsdp"

    def opts(*more):
        return [f"output_dir={out}", "progress=none", "tensorboard=false", "log_every=1", *more]

    proc = _launch_fsdp(preset, *opts("max_steps=4", "checkpoint.every=2"))
    assert "processes=2" in proc.stdout
    assert "distributed: FSDP2 fully_shard" in proc.stdout  # really sharded, not DDP
    ck = latest_checkpoint(out / "checkpoints")
    assert read_json(ck, "state.json")["world_size"] == 2
    # The same files, keys and (full) shapes as a single-process checkpoint of the same preset.
    single = tmp_path / "single"
    Trainer(
        resolve_config(
            preset, [f"output_dir={single}", "progress=none", "tensorboard=false", "max_steps=1"]
        )
    ).fit()
    assert _layout(ck) == _layout(latest_checkpoint(single / "checkpoints"))
    SRPipeline.from_pretrained(out / "export")
    # 2 → 1: one process continues the FSDP checkpoint.
    t = Trainer(resolve_config(preset, opts("max_steps=6")))
    t.fit()
    assert t.step == 6
    assert [int(r["step"]) for r in read_csv(out / "train.csv")][-2:] == [5, 6]
    SRPipeline.from_pretrained(out / "export")
    # 1 → 2: two FSDP processes continue the 1-process checkpoint.
    assert read_json(latest_checkpoint(out / "checkpoints"), "state.json")["world_size"] == 1
    proc = _launch_fsdp(preset, *opts("max_steps=8"))
    assert "has no RNG state for process 1" in proc.stderr
    assert [int(r["step"]) for r in read_csv(out / "train.csv")][-2:] == [7, 8]
    assert read_json(latest_checkpoint(out / "checkpoints"), "state.json")["step"] == 8
