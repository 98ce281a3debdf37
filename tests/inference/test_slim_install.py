"""The upscaler runs on a slim install (issue 14): no peft, accelerate, transformers, diffusers,
gradio or rich, with LoRA models giving the same bits as with peft.

Each check runs in a fresh interpreter, so modules other tests imported do not hide an import.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from test_builtin_reference import REFERENCE

from flowmapsr.inference.pipeline import BUILTIN_DIR, LORA_NAME, WEIGHTS_NAME, SRPipeline
from flowmapsr.nets import build_net
from flowmapsr.nets.lora import PlainLoRA, attach_lora, set_lora_scale

HEAVY = ("peft", "accelerate", "transformers", "diffusers", "gradio", "rich")
SRC = str(Path(__file__).resolve().parents[2] / "src")
SCALES = (0.0, 1.0, 1.7, 0.5)  # 0.5 last: back to a scale seen before, re-merged


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _lr() -> torch.Tensor:
    return torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(1234))


def test_upscaler_imports_no_training_or_large_stack(tmp_path):
    """The pipeline (built-in LoRA model) and then ``flowmapsr upscale`` on a file."""
    code = f"""
import sys, numpy as np, torch
from PIL import Image
from flowmapsr.inference.pipeline import SRPipeline
pipe = SRPipeline.from_pretrained(None)
lr = torch.rand(1, 3, 16, 12, generator=torch.Generator().manual_seed(0))
out = pipe.upscale_tensor(lr, scale=4, mode="realism")
assert out.shape == (1, 3, 64, 48)
Image.fromarray(np.full((12, 16, 3), 90, np.uint8)).save({str(tmp_path / "in.png")!r})
from flowmapsr.cli.main import main
assert main(["upscale", {str(tmp_path / "in.png")!r}, "-o", {str(tmp_path / "out")!r}]) == 0
print(",".join(m for m in {HEAVY!r} if m in sys.modules) or "none")
"""
    assert _run(code).strip().splitlines()[-1] == "none"
    assert (tmp_path / "out" / "in.png").is_file()


def test_builtin_model_without_peft_matches_the_reference_and_peft(tmp_path):
    """With every heavy package made unimportable: the pinned digests, and at several LoRA
    scales on one pipeline exactly the output of the same model on peft's adapters."""
    out_file = tmp_path / "out.npy"
    code = f"""
import hashlib, sys
for m in {HEAVY!r}:
    sys.modules[m] = None  # import m now raises ImportError, as when it is not installed
import numpy as np, torch
from flowmapsr.inference.pipeline import SRPipeline
pipe = SRPipeline.from_pretrained(None)
lr = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(1234))
for kwargs in {[k for k, _, _ in REFERENCE]!r}:
    out = pipe.upscale_tensor(lr, **kwargs)
    print(hashlib.sha256(out.numpy().astype(np.float32).tobytes()).hexdigest())
outs = [pipe.upscale_tensor(lr, scale=4, lora_scale=s).numpy() for s in {SCALES!r}]
np.save({str(out_file)!r}, np.stack(outs))
print(type(pipe.net.blocks[0].conv1).__name__)
"""
    lines = _run(code).strip().splitlines()
    assert lines[:3] == [digest for _, digest, _ in REFERENCE]
    assert lines[3] == PlainLoRA.__name__
    # The same model on peft's adapters, merged by peft.
    pipe = SRPipeline.from_pretrained(None)
    net = build_net(pipe.config.net)
    net.load_state_dict(load_file(str(BUILTIN_DIR / WEIGHTS_NAME)), strict=True)
    attach_lora(net, pipe.config.lora)
    net.load_state_dict(load_file(str(BUILTIN_DIR / LORA_NAME)), strict=False)
    set_lora_scale(net, pipe.config.lora_scale)
    with_peft = SRPipeline(net, pipe.config, pipe.codec)
    assert type(with_peft.net.blocks[0].conv1).__module__.startswith("peft")
    slim = np.load(out_file)
    for i, s in enumerate(SCALES):
        ref = with_peft.upscale_tensor(_lr(), scale=4, lora_scale=s)
        assert torch.equal(torch.from_numpy(slim[i]), ref), s
    assert not np.array_equal(slim[0], slim[1])  # the scale does change the output
