"""Two CPU processes (gloo) through ``accelerate launch``; the checkpoint then loads in one.

In accelerate 1.x, ``accelerate launch --num_processes 2 --cpu`` starts ONE process (``--cpu``
selects the simple launcher, which only forks several processes through mpirun); on a machine
without GPUs, ``--multi_gpu --num_processes 2`` goes through ``torch.distributed.run`` and the
trainer's Accelerator (``cpu=True``) joins a gloo process group.
"""

import os
import shutil
import subprocess

import pytest

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
