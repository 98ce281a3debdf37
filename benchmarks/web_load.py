"""Web page under load: N concurrent clients each upscale one small image via ``flowmapsr serve``.

Prints one JSON object. For each client count a fresh server is started by the real command
(``python -m flowmapsr serve --host 127.0.0.1 ...``, loopback only) in its own process, so its
memory is its own; after one warm-up request (not counted), N threads, each with its own
``gradio_client.Client`` (a browser tab), submit at the same moment through the API the page uses
(``/handler``). Each request ends as one of:

* ``ok``: the reply's download is a PNG of the expected size (checked, not assumed);
* ``busy``: the server refused it with its queue-full reply (HTTP 503; Gradio's page script words it
  "This application is currently busy. Please try again.", the API client raises
  ``QueueError``). The app runs one request at a time and lets ``--queue-size`` wait, so at most
  1 + queue_size requests are in the server at once;
* ``error``: anything else (message kept), or ``timeout`` when ``--timeout`` ran out.

Reported per client count: the counts, latency (submit → reply, seconds) p50 / p95 / max of the ok
requests and of the busy refusals (numpy's linear-interpolation percentiles), the ok requests'
compute time as the server reported it (the rest of their latency is waiting), the burst's wall
time, and the server's memory: RSS before the burst, the peak RSS sampled every 50 ms during it
(server process and any children), and VmHWM (the kernel's peak since the server started, model
load included). Bounded: at most 64 clients, every wait capped by ``--timeout``.

The model is a random-weight small net of the default size (``SmallNetConfig()``, exported to a
temp folder; :mod:`flowmapsr.inference.random_model`), or with ``--builtin`` the built-in one, or
``--model DIR``. Needs ``gradio`` and ``gradio_client``; ``psutil`` for the sampled RSS (else only
VmHWM from ``/proc``).

Usage: ``python benchmarks/web_load.py --clients 8 12 [--size 64] [--scale 4] [--builtin]``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

MAX_CLIENTS = 64
SRC = Path(__file__).resolve().parents[1] / "src"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _image(path: Path, size: int, seed: int) -> Path:
    """A ``size``² RGB PNG: smooth blobs plus fine noise (textured, like a photo crop)."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((max(size // 8, 2), max(size // 8, 2), 3))
    img = np.asarray(
        Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    )
    img = np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path)
    return path


def _model_dir(args, tmp: Path) -> tuple[Path | None, str, dict]:
    """(folder to pass as --model or None for the built-in, description, its config dict)."""
    from flowmapsr.inference.pipeline import BUILTIN_DIR, CONFIG_NAME

    if args.model:
        folder = Path(args.model)
        return folder, f"folder {folder}", json.loads((folder / CONFIG_NAME).read_text())
    if args.builtin:
        return None, "built-in", json.loads((BUILTIN_DIR / CONFIG_NAME).read_text())
    from flowmapsr.inference.random_model import random_pipeline

    folder = tmp / "model"
    random_pipeline({"type": "small"}, seed=0).save_pretrained(folder)
    return folder, "random-weights SmallNetConfig()", json.loads((folder / CONFIG_NAME).read_text())


def _vm_kb(pid: int, key: str) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return float("nan")


class RssSampler(threading.Thread):
    """Peak RSS (MB) of a process and its children, sampled every ``every`` s until stopped."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak_mb = pid, every, float("nan")
        self._halt = threading.Event()

    def run(self) -> None:
        try:
            import psutil
        except ImportError:
            return
        proc, peak = psutil.Process(self.pid), 0
        while not self._halt.is_set():
            try:
                total = proc.memory_info().rss
                for child in proc.children(recursive=True):
                    try:
                        total += child.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                break
            peak = max(peak, total)
            self._halt.wait(self.every)
        self.peak_mb = peak / 2**20 if peak else float("nan")

    def stop(self) -> float:
        self._halt.set()
        self.join(timeout=5)
        return self.peak_mb


def _start_server(model: Path | None, port: int, args, log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])),
    }
    argv = [sys.executable, "-m", "flowmapsr", "serve", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--queue-size", str(args.queue_size), "--device", args.device]
    if model is not None:
        argv += ["--model", str(model)]
    log = open(log_path, "wb")  # noqa: SIM115 - the server writes to it until it stops
    return subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)


def _wait_ready(proc: subprocess.Popen, url: str, deadline: float, log_path: Path) -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}): {log_path.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "config", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"server not ready within the time bound: {log_path.read_text()[-2000:]}")


def _stop_server(proc: subprocess.Popen) -> int:
    """Ctrl-C (SIGINT), as a user stops it; SIGKILL after 20 s. The exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def _percentiles(xs: list[float]) -> dict | None:
    if not xs:
        return None
    a = np.asarray(xs)
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "max": round(float(a.max()), 3),
    }


def _one_request(client, png: Path, knobs: list, expect: tuple, deadline: float) -> dict:
    """Submit, wait (bounded), classify. ``{"outcome", "seconds", "message"}``."""
    from gradio_client import handle_file
    from gradio_client.utils import QueueError

    t0 = time.perf_counter()
    try:
        job = client.submit(handle_file(str(png)), *knobs, api_name="/handler")
        _, download, info = job.result(timeout=max(deadline - time.monotonic(), 0.1))
        seconds = time.perf_counter() - t0
        with Image.open(download) as im:
            im.load()
            if im.size != expect:
                return {"outcome": "error", "seconds": seconds, "message": f"size {im.size}"}
        return {"outcome": "ok", "seconds": seconds, "message": info}
    except QueueError as err:
        return {"outcome": "busy", "seconds": time.perf_counter() - t0, "message": str(err)}
    except TimeoutError:
        return {"outcome": "timeout", "seconds": time.perf_counter() - t0, "message": "timeout"}
    except Exception as err:  # noqa: BLE001 - every other failure is counted and shown
        text = str(err).splitlines()[0] if str(err) else type(err).__name__
        return {"outcome": "error", "seconds": time.perf_counter() - t0, "message": text}


def load_run(n: int, model: Path | None, png: Path, knobs: list, expect: tuple, args, tmp: Path):
    """One fresh server, one warm-up request, then ``n`` concurrent clients; a result dict."""
    from gradio_client import Client

    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = tmp / f"server-{n}.log"
    t_start = time.monotonic()
    deadline = t_start + args.timeout
    proc = _start_server(model, port, args, log_path)
    out: dict = {"clients": n}
    try:
        _wait_ready(proc, url, deadline, log_path)
        out["server_start_s"] = round(time.monotonic() - t_start, 2)
        clients = [
            Client(url, verbose=False, download_files=str(tmp / f"dl-{n}-{i}")) for i in range(n)
        ]
        warm = _one_request(clients[0], png, knobs, expect, deadline)
        if warm["outcome"] != "ok":
            raise RuntimeError(f"warm-up request failed: {warm}")
        out["warmup_s"] = round(warm["seconds"], 3)
        out["server_rss_before_mb"] = round(_vm_kb(proc.pid, "VmRSS") / 1024, 1)
        sampler = RssSampler(proc.pid)
        sampler.start()
        results: list[dict | None] = [None] * n
        barrier = threading.Barrier(n)

        def worker(i: int) -> None:
            barrier.wait()  # every client submits at the same moment
            results[i] = _one_request(clients[i], png, knobs, expect, deadline)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(deadline - time.monotonic(), 0) + 5)
        out["wall_s"] = round(time.perf_counter() - t0, 3)
        out["server_peak_rss_mb"] = round(sampler.stop(), 1)
        out["server_vmhwm_mb"] = round(_vm_kb(proc.pid, "VmHWM") / 1024, 1)
        done = [
            r or {"outcome": "timeout", "seconds": float("nan"), "message": "no reply"}
            for r in results
        ]
        for kind in ("ok", "busy", "error", "timeout"):
            out[kind] = sum(r["outcome"] == kind for r in done)
        out["latency_ok_s"] = _percentiles([r["seconds"] for r in done if r["outcome"] == "ok"])
        # the handler's own compute time ("... in 0.8 s (1 step(s), x4)"): latency minus waiting
        service = [
            re.search(r" in ([\d.]+) s ", r["message"]) for r in done if r["outcome"] == "ok"
        ]
        out["compute_ok_s"] = _percentiles([float(m[1]) for m in service if m])
        out["latency_busy_s"] = _percentiles([r["seconds"] for r in done if r["outcome"] == "busy"])
        out["busy_messages"] = sorted({r["message"] for r in done if r["outcome"] == "busy"})
        out["errors"] = sorted({r["message"] for r in done if r["outcome"] in ("error", "timeout")})
        for c in clients:
            c.close()
    finally:
        out["server_exit_code"] = _stop_server(proc)
    log = log_path.read_text(errors="replace")
    out["server_log_tracebacks"] = log.count("Traceback")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clients", type=int, nargs="+", default=[8, 12])
    p.add_argument("--size", type=int, default=64, help="input side in pixels (default 64)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--tile", type=int, default=0, help="tile knob sent (default 0: untiled)")
    p.add_argument("--queue-size", type=int, default=None, help="default: the serve default")
    p.add_argument("--device", default="cpu")
    p.add_argument("--timeout", type=float, default=600.0, help="bound per client count (s)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--builtin", action="store_true", help="the built-in model")
    src.add_argument("--model", metavar="DIR", help="a pipeline folder")
    args = p.parse_args()
    if not all(1 <= n <= MAX_CLIENTS for n in args.clients):
        p.error(f"--clients must be in 1–{MAX_CLIENTS}")
    if not (8 <= args.size <= 1024 and 1 <= args.scale <= 16 and args.timeout > 0):
        p.error("--size must be in 8–1024, --scale in 1–16, --timeout positive")
    sys.path.insert(0, str(SRC))
    from flowmapsr.serve.app import DEFAULT_QUEUE_SIZE

    if args.queue_size is None:
        args.queue_size = DEFAULT_QUEUE_SIZE
    with tempfile.TemporaryDirectory(prefix="web-load-") as tmp_name:
        tmp = Path(tmp_name)
        model, described, cfg = _model_dir(args, tmp)
        png = _image(tmp / "in.png", args.size, seed=0)
        # the handler's inputs: path, scale, steps, guidance, lora scale, seed, tile, overlap,
        # colour fix; the model's defaults (what the page shows first)
        knobs = [args.scale, cfg.get("steps", 1), cfg.get("guidance", 1.0)]
        knobs += [cfg.get("lora_scale", 1.0), 0, args.tile, 32 if args.tile else 0, "none"]
        expect = (args.size * args.scale, args.size * args.scale)
        runs = [load_run(n, model, png, knobs, expect, args, tmp) for n in args.clients]
    report = {
        "benchmark": "web_load",
        "model": described,
        "device": args.device,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "unset"),
        "cpus": os.cpu_count(),
        "image": {"input": [args.size, args.size], "scale": args.scale, "output": list(expect)},
        "knobs": {
            "steps": knobs[1],
            "guidance": knobs[2],
            "lora_scale": knobs[3],
            "tile": args.tile,
        },
        "queue_size": args.queue_size,
        "server_capacity": 1 + args.queue_size,
        "runs": runs,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
