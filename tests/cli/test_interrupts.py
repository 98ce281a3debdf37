"""Interrupted batches, as a user (or a CI timeout, or the OOM killer) interrupts them (issue 18).

A batch of 20 images is upscaled by the real CLI in a child process (``python -m flowmapsr
upscale``) and killed three times at seeded points, each time rerun: first mid-write (a wrapper
makes each write's temp file linger, see ``SLOW_DISK``), then just after the k-th new output
appeared, then at a random moment inside the next image; a final rerun goes to the end. After a
SIGTERM the run has exited with 128 + 15, printed a summary that matches the folder, and left no
temp file; a temp file a SIGKILL left is removed, and counted in a note, by the next run. At the
end the output folder holds exactly the 20 finished images (each decodes fully, at 4× its
input's size) and nothing else, and the inputs are untouched. Slow (about a minute): ``-m slow``.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import flowmapsr
from flowmapsr.inference.random_model import random_pipeline

pytestmark = pytest.mark.slow

N_IMAGES = 20
H, W = 56, 64  # input size; with --tile 16 one image takes ~0.25 s on one core
SCALE = 4
KILLS = 3  # interruptions per batch before the final, uninterrupted rerun
WAIT_S = 180  # bound on any one wait (slow shared machines), so a hang fails instead of hanging
SUMMARY = re.compile(
    r"flowmapsr upscale: (?P<done>\d+) done, (?P<skipped>\d+) skipped, (?P<failed>\d+) failed"
    r"(?:, interrupted by (?P<signal>SIG\w+) \((?P<left>\d+) not written\))?"
)
TEMP = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # flowmapsr.atomic's temp-file names


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model")
    random_pipeline({"type": "small", "channels": 16, "blocks": 2}, seed=7).save_pretrained(path)
    return path


@pytest.fixture
def inputs(tmp_path):
    rng = np.random.default_rng(18)
    folder = tmp_path / "in"
    folder.mkdir()
    for n in range(N_IMAGES):
        a = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(a).save(folder / f"{n:02d}.png")
    return folder


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _finished(out: Path) -> list[str]:
    """Names of the outputs in place (a temp file is hidden, so never counted here)."""
    return sorted(p.name for p in out.glob("[!.]*.png")) if out.is_dir() else []


def _temps(out: Path) -> list[str]:
    return sorted(n for n in os.listdir(out) if TEMP.match(n)) if out.is_dir() else []


# A slow disk, for a kill that lands mid-write every time: each output's temp file is fully
# written and then sits SLOW_WRITE_S before its rename (a real write takes ~1 ms, too short to hit
# by chance). Only the wrapper differs; the CLI, its signal handling and the atomic write are real.
SLOW_WRITE_S = 1.0
SLOW_DISK = f"""
import runpy, sys, time
import flowmapsr.atomic, flowmapsr.imageio
real = flowmapsr.atomic.atomic_write
def slow(path, write):
    def write_then_wait(f):
        write(f)
        f.flush()
        time.sleep({SLOW_WRITE_S})
    real(path, write_then_wait)
flowmapsr.imageio.atomic_write = slow
sys.argv[0] = "flowmapsr"
runpy.run_module("flowmapsr", run_name="__main__")
"""


def _start(inputs: Path, out: Path, model: Path, slow_disk: bool = False) -> subprocess.Popen:
    src = str(Path(flowmapsr.__file__).resolve().parents[1])  # this checkout, not an install
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    argv = [sys.executable, "-c", SLOW_DISK] if slow_disk else [sys.executable, "-m", "flowmapsr"]
    argv += ["upscale", str(inputs), "-o", str(out)]
    argv += ["--model", str(model), "--scale", str(SCALE), "--tile", "16", "--overlap", "4"]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        stdout, stderr = proc.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"the CLI did not exit within {WAIT_S} s")
    return proc.returncode, stdout, stderr


def _summary(stdout: str) -> dict:
    lines = [m for m in map(SUMMARY.search, stdout.splitlines()) if m]
    assert len(lines) == 1, f"expected one summary line, got:\n{stdout}"
    return lines[0].groupdict()


def _kill_after(proc, out: Path, k: int, delay: float, sig: int, mid_write: bool) -> int:
    """Wait (polling, bounded) until ``k`` more outputs are in place, then ``delay`` s, or with
    ``mid_write`` until the next temp file exists; send ``sig``. Returns the outputs in place."""
    start = len(_finished(out))
    deadline = time.monotonic() + WAIT_S

    def wait(what: str, done) -> None:
        while not done():
            if proc.poll() is not None:
                pytest.fail(f"the CLI exited (code {proc.returncode}) before {what}")
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"no {what} after {WAIT_S} s")
            time.sleep(0.01)

    wait(f"{k} new outputs", lambda: len(_finished(out)) >= start + k)
    if mid_write:
        wait("temp file", lambda: bool(_temps(out)))
    else:
        time.sleep(delay)
    assert proc.poll() is None, "the batch ended before the kill point; use more/larger images"
    in_place = len(_finished(out))
    proc.send_signal(sig)
    return in_place


def _check_outputs(out: Path, names: list[str]) -> None:
    """Every name decodes fully (a truncated PNG raises here) at SCALE × the input size."""
    for name in names:
        with Image.open(out / name) as im:
            im.verify()
        with Image.open(out / name) as im:
            im.load()
            assert im.size == (W * SCALE, H * SCALE) and im.mode == "RGB", (name, im.size)


def _removed_note(stderr: str) -> int:
    """How many stale temps the run said it removed (0 when it said nothing)."""
    return sum(int(n) for n in re.findall(r"removed (\d+) temp file\(s\)", stderr))


@pytest.mark.parametrize(
    ("sig", "seed"), [(signal.SIGTERM, 1), (signal.SIGKILL, 2)], ids=["SIGTERM", "SIGKILL"]
)
def test_killed_batches_finish_exactly_on_rerun(tmp_path, model, inputs, sig, seed):
    rng = np.random.default_rng(seed)
    out = tmp_path / "out"
    before = _digest(inputs)
    expected = [f"{n:02d}.png" for n in range(N_IMAGES)]
    for round_ in range(KILLS):
        had, pending = _finished(out), _temps(out)
        proc = _start(inputs, out, model, slow_disk=round_ == 0)  # round 0: mid-write
        try:
            # k ≥ 1: the signal handler is installed before the model loads, so it is in place
            # once an output exists (a kill during the imports gets the default action).
            k = int(rng.integers(1, 5))
            # round 1: just after an output was renamed into place (the next read starts);
            # round 2: a random point inside the next image's compute or write.
            delay = 0.0 if round_ < 2 else float(rng.uniform(0.0, 0.4))
            at_kill = _kill_after(proc, out, k, delay, sig, mid_write=round_ == 0)
            rc, stdout, stderr = _finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        now = _finished(out)
        where = f"round {round_}, k={k}, delay={delay:.3f}"
        if round_ == 0 and sig == signal.SIGKILL:
            assert len(_temps(out)) == 1, where  # the write it was in; the next run removes it
        assert _removed_note(stderr) == len(pending), (where, pending, stderr[-2000:])
        assert set(had) <= set(now) and len(now) < N_IMAGES, where
        assert len(now) >= at_kill, where  # nothing in place disappears
        _check_outputs(out, sorted(set(now) - set(had)))  # every name in place is finished
        if sig == signal.SIGTERM:
            assert rc == 128 + signal.SIGTERM, f"{where}: exit {rc}\n{stderr[-2000:]}"
            assert "Traceback" not in stderr, f"{where}\n{stderr[-2000:]}"
            s = _summary(stdout)
            assert s["signal"] == "SIGTERM" and s["failed"] == "0", (where, s)
            assert int(s["skipped"]) == len(had), (where, s)
            new = len(now) - len(had)
            # done counts images whose write returned; a signal landing between the rename and
            # that return leaves one more file in place than done says, never one fewer.
            assert int(s["done"]) <= new <= int(s["done"]) + 1, (where, s, new)
            assert int(s["done"]) + int(s["left"]) == N_IMAGES - len(had), (where, s)
            assert _temps(out) == [], where  # SIGTERM drops the current file's temp
        else:
            assert rc == -signal.SIGKILL, f"{where}: exit {rc}\n{stderr[-2000:]}"
        # besides finished outputs, only our temps (after SIGKILL mid-write) may be there
        others = set(os.listdir(out)) - set(now) - set(_temps(out))
        assert not others, (where, others)

    had, pending = _finished(out), _temps(out)
    rc, stdout, stderr = _finish(_start(inputs, out, model))
    assert rc == 0, stderr[-2000:]
    assert _removed_note(stderr) == len(pending), (pending, stderr[-2000:])
    s = _summary(stdout)
    assert s["signal"] is None and s["failed"] == "0", s
    assert (int(s["done"]), int(s["skipped"])) == (N_IMAGES - len(had), len(had)), s
    assert sorted(os.listdir(out)) == expected  # exactly the 20 images: no temp, nothing else
    _check_outputs(out, expected)
    assert _digest(inputs) == before  # inputs untouched
