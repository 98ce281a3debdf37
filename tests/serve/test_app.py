"""The serve page: its callback upscales uploads, and a headless Chromium drives it end to end.

The browser test needs Debian's ``chromium`` + ``chromium-driver`` and the ``selenium`` package;
it skips (saying which is missing) when they are absent. No browser is downloaded at test time.
"""

from __future__ import annotations

import io
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flowmapsr.inference.random_model import random_pipeline

pytest.importorskip("gradio", reason="flowmapsr serve needs gradio (pip install '.[serve]')")

from flowmapsr.serve.app import (  # noqa: E402
    ResultFolders,
    build_app,
    close_app,
    launch,
    make_handler,
)

RNG = np.random.default_rng(3)


@pytest.fixture(scope="module")
def pipe():
    return random_pipeline({"type": "small", "channels": 16, "blocks": 2}, seed=9)


def _png(path, h=20, w=16, channels=3):
    Image.fromarray(RNG.integers(0, 256, (h, w, channels), dtype=np.uint8)).save(path)
    return path


def test_handler_upscales_and_writes_a_download(pipe, tmp_path):
    handler = make_handler(pipe, out_root=str(tmp_path))
    src = _png(tmp_path / "in.png", channels=4)
    (before, after), download, info = handler(str(src), 4, 1, 1.0, 1.0, 0, 256, 32, "none")
    assert before.size == after.size == (64, 80)
    with Image.open(download) as im:
        assert im.size == (64, 80) and im.mode == "RGBA"
    assert "16×20 → 64×80" in info
    (_, after2), _, _ = handler(str(src), 2, 2, 1.0, 1.0, 0, 16, 4, "wavelet")  # 2 tiles high
    assert after2.size == (32, 40)


def test_handler_rejects_bad_uploads(pipe, tmp_path):
    import gradio as gr

    handler = make_handler(pipe, max_pixels=100, out_root=str(tmp_path))
    with pytest.raises(gr.Error, match="exceeds the limit"):
        handler(str(_png(tmp_path / "big.png")), 4, 1, 1.0, 1.0, 0, 0, 0, "none")
    (tmp_path / "junk.png").write_text("junk")
    with pytest.raises(gr.Error, match="not an image"):
        handler(str(tmp_path / "junk.png"), 4, 1, 1.0, 1.0, 0, 0, 0, "none")
    with pytest.raises(gr.Error, match="upload an image"):
        handler(None, 4, 1, 1.0, 1.0, 0, 0, 0, "none")


@pytest.mark.parametrize(
    ("knobs", "message"),
    [
        ({"tile": 1}, "tile: must be an integer in 16–65536, or 0 (untiled), got '1'"),
        ({"tile": 70000}, "tile: must be an integer in 16–65536"),
        ({"scale": float("inf")}, "scale: must be a number in 1–16, got 'inf'"),
        ({"scale": 1e9}, "scale: must be a number in 1–16"),
        ({"steps": 0}, "steps: must be an integer in 1–1000, got '0'"),
        ({"steps": 2.5}, "steps: expected an integer"),
        ({"guidance": float("nan")}, "guidance: must be a finite number, got 'nan'"),
        ({"overlap": -1}, "overlap: must be an integer in 0–65536"),
        ({"seed": -3}, "seed: must be an integer in 0–"),
        ({"color_fix": "rainbow"}, "colour fix: must be none, wavelet or adain"),
    ],
)
def test_handler_bounds_the_knobs_like_the_cli(pipe, tmp_path, caplog, knobs, message):
    """A request that skips the widgets (the API, a script) meets the CLI's parse-time bounds,
    and the refusal is one log line without a traceback."""
    import gradio as gr

    handler = make_handler(pipe, out_root=str(tmp_path))
    args = dict(scale=4, steps=1, guidance=1.0, lora_scale=1.0, seed=0, tile=256, overlap=32)
    args["color_fix"] = "none"
    args.update(knobs)
    src = _png(tmp_path / "in.png")
    with caplog.at_level("INFO", logger="flowmapsr.serve"):
        with pytest.raises(gr.Error) as info:
            handler(str(src), *args.values())
    assert message in info.value.message and not info.value.print_exception
    (record,) = caplog.records
    assert record.exc_info is None and "\n" not in record.getMessage()
    assert message in record.getMessage()
    assert not list(handler.results.root.iterdir())  # nothing was computed or written


def test_handler_applies_the_clis_cost_ceiling(pipe, tmp_path, caplog):
    """The same ceiling and messages as ``flowmapsr upscale``, naming the server's options and
    the upload by its own name; the cost is injected (10⁴ s per output MP), nothing timed."""
    import gradio as gr

    from flowmapsr.inference.cost import CostMeter
    from flowmapsr.serve.app import web_ceiling

    upload = tmp_path / "uploads" / "holiday.png"
    upload.parent.mkdir()
    src = _png(upload, h=64, w=64)  # x4: 256×256 = 0.065536 MP of output → 655 s
    handler = make_handler(pipe, out_root=str(tmp_path), meter=CostMeter(1e4))
    assert handler.meter.rate == 1e4
    with caplog.at_level("INFO", logger="flowmapsr.serve"):
        with pytest.raises(gr.Error) as info:
            handler(str(src), 4, 1, 1.0, 1.0, 0, 256, 32, "none")
    assert info.value.message.startswith("holiday.png: estimated 655 s for the 256×256 output")
    assert "exceeds the limit of 300 s" in info.value.message  # the page's default
    assert "flowmapsr serve --max-seconds" in info.value.message
    assert str(upload.parent) not in info.value.message
    (record,) = caplog.records
    assert record.exc_info is None and "holiday.png: estimated 655 s" in record.getMessage()
    small = make_handler(pipe, out_root=str(tmp_path), ceiling=web_ceiling(0.05, 0))
    with pytest.raises(gr.Error, match="0.1 MP exceeds the limit of 0.05 MP .*--max-megapixels"):
        small(str(src), 4, 1, 1.0, 1.0, 0, 256, 32, "none")
    _, _, text = small(str(src), 2, 1, 1.0, 1.0, 0, 256, 32, "none")  # 128² output fits
    assert "64×64 → 128×128" in text
    assert not list(handler.results.root.iterdir())  # the refused request wrote nothing


def test_result_folders_are_bounded_and_removed(pipe, tmp_path):
    handler = make_handler(pipe, out_root=str(tmp_path), keep_results=2)
    src = _png(tmp_path / "in.png", h=8, w=8)
    downloads = [handler(str(src), 2, 1, 1.0, 1.0, 0, 0, 0, "none")[1] for _ in range(4)]
    root = handler.results.root
    assert root.name.startswith("flowmapsr-") and root.parent == tmp_path
    assert len(list(root.iterdir())) == 2  # only the newest two requests' folders remain
    assert [Path(d).exists() for d in downloads] == [False, False, True, True]
    handler.results.close()
    assert not root.exists()
    with pytest.raises(ValueError, match="at least 1"):
        ResultFolders(0)
    # collected with its handler (a server that stops): the folder goes too
    other = make_handler(pipe, out_root=str(tmp_path))
    other_root = other.results.root
    del other
    import gc

    gc.collect()
    assert not other_root.exists()


def test_a_text_file_named_png_gets_our_one_line_message(pipe, tmp_path, capfd):
    """Through the running server (upload, queue, preprocessing), as a browser would send it:
    the reply is the reader's message naming the file, not Gradio's PIL error with server
    paths, and the server log has one line for it, no traceback."""
    from gradio_client import Client, handle_file

    junk = tmp_path / "notes.png"
    junk.write_text("these are my notes, not a picture")
    app = build_app(pipe)
    try:
        _, url, _ = launch(app, port=_free_port(), block=False)
        client = Client(url, verbose=False)
        with pytest.raises(Exception) as info:
            client.predict(
                handle_file(str(junk)), 4, 1, 1.0, 1.0, 0, 256, 32, "none", api_name="/handler"
            )
        message = str(info.value)
        assert "notes.png" in message and "not an image" in message
        assert "/tmp" not in message and str(tmp_path) not in message
        # a real image through the same path still works
        png = _png(tmp_path / "ok.png", h=8, w=8)
        result = client.predict(
            handle_file(str(png)), 2, 1, 1.0, 1.0, 0, 0, 0, "none", api_name="/handler"
        )
        assert "8×8 → 16×16" in result[2]
        results_root = app.flowmapsr_results.root
        assert results_root.exists()
    finally:
        close_app(app)
    assert not results_root.exists()  # closing the app removes its result folders
    err = capfd.readouterr().err
    assert "Traceback" not in err


def test_app_has_bounded_queue_and_binds_localhost(pipe):
    app = build_app(pipe, queue_size=3)
    try:
        _, url, _ = launch(app, port=_free_port(), max_upload_mb=1, block=False)
        assert url.startswith("http://127.0.0.1:")
        assert app._queue.max_size == 3
        assert app.max_file_size == 1024 * 1024
        # An upload over the limit is refused by the server; a small one is accepted.
        assert _upload(url, b"x" * 1000) == 200
        assert _upload(url, b"x" * (2 * 1024 * 1024)) == 413
    finally:
        app.close()


def test_serve_command_errors_are_clear(tmp_path, capsys, monkeypatch):
    import argparse

    import flowmapsr.inference.pipeline as pipeline
    from flowmapsr.cli import serve

    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers())
    args = parser.parse_args(["serve"])
    assert args.host == "127.0.0.1"  # localhost unless told otherwise
    monkeypatch.setattr(pipeline, "BUILTIN_DIR", tmp_path / "none")
    assert serve.run(args) == 2
    assert "no built-in model is installed" in capsys.readouterr().err
    assert serve.run(parser.parse_args(["serve", "--queue-size", "0"])) == 2


def _upload(url: str, payload: bytes) -> int:
    """POST one file to Gradio's upload endpoint; the HTTP status."""
    boundary = "flowmapsrboundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            f'filename="f.png"\r\nContent-Type: image/png\r\n\r\n'
        ).encode()
        + payload
        + f"\r\n--{boundary}--\r\n".encode()
    )
    req = urllib.request.Request(
        url.rstrip("/") + "/gradio_api/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status
    except urllib.error.HTTPError as err:
        return err.code


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _chrome():
    """A headless Chromium driven by selenium, or a pytest skip naming what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip)")
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip(
            "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        )
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1600",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=opts)


@pytest.mark.browser
def test_browser_upload_click_download(pipe, tmp_path):
    driver = _chrome()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    app = build_app(pipe)
    try:
        _, url, _ = launch(app, port=_free_port(), block=False)
        src = _png(tmp_path / "upload.png", h=24, w=18)
        driver.set_page_load_timeout(60)
        driver.get(url)
        wait = WebDriverWait(driver, 60)
        upload = wait.until(
            ec.presence_of_element_located((By.CSS_SELECTOR, "#input-image input[type=file]"))
        )
        upload.send_keys(str(src))
        # The upload is done when the preview image appears in the input component.
        wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#input-image img")))
        wait.until(ec.element_to_be_clickable((By.ID, "upscale-btn"))).click()

        def info_text(d):
            boxes = d.find_elements(By.CSS_SELECTOR, "#info textarea")
            text = boxes[0].get_attribute("value") if boxes else ""
            return text if "→" in text else False

        text = wait.until(info_text)
        assert "18×24 → 72×96" in text
        # The after image shown in the slider has the upscaled size.
        sizes = WebDriverWait(driver, 30).until(
            lambda d: (
                d.execute_script(
                    "return Array.from(document.querySelectorAll('#result img'))"
                    ".filter(i => i.complete && i.naturalWidth > 0)"
                    ".map(i => [i.naturalWidth, i.naturalHeight]);"
                )
                or False
            )
        )
        assert [72, 96] in sizes
        # The download link serves the PNG at that size.
        link = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#download a")))
        href = link.get_attribute("href")
        with urllib.request.urlopen(href, timeout=30) as resp:
            data = resp.read()
        with Image.open(io.BytesIO(data)) as im:
            assert im.size == (72, 96) and im.format == "PNG"
    finally:
        driver.quit()
        app.close()
        time.sleep(0.1)


def test_mode_radio_lists_the_models_modes_and_sets_the_knobs(pipe):
    import copy
    import dataclasses

    from flowmapsr.serve.app import available_modes

    assert available_modes(pipe.config) == ["balanced"]
    moded = copy.copy(pipe)
    modes = {"realism": {"steps": 2, "lora_scale": 1.5}}
    moded.config = dataclasses.replace(pipe.config, modes=modes)
    assert available_modes(moded.config) == ["balanced", "realism"]
    app = build_app(moded)
    radios = [b for b in app.blocks.values() if getattr(b, "elem_id", None) == "mode"]
    assert len(radios) == 1
    assert [c[0] for c in radios[0].choices] == ["balanced", "realism"]
    # the radio's change event writes the mode's knobs into the steps / ω / LoRA sliders
    fn = next(f for f in app.fns.values() if radios[0]._id in [t[0] for t in f.targets])
    assert tuple(fn.fn("realism")) == (2, moded.config.guidance, 1.5)
    assert tuple(fn.fn("balanced"))[0] == moded.config.steps


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_serve_stopped_by_a_signal_removes_its_result_folder(tmp_path, sig):
    """``flowmapsr serve`` stopped as a service manager (SIGTERM) or a user (Ctrl-C) stops it:
    exit code 0 and no ``flowmapsr-*`` folder (users' results) left in the temp dir."""
    import os
    import signal
    import subprocess
    import sys

    import flowmapsr

    model = tmp_path / "model"
    random_pipeline({"type": "small", "channels": 8, "blocks": 1}, seed=1).save_pretrained(model)
    temp = tmp_path / "tmp"
    temp.mkdir()
    src = str(Path(flowmapsr.__file__).resolve().parents[1])
    env = {**os.environ, "TMPDIR": str(temp), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    port = _free_port()
    argv = [sys.executable, "-m", "flowmapsr", "serve", "--model", str(model), "--port", str(port)]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=2).close()
                break
            except OSError:
                time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[0]
        assert [p.name for p in temp.glob("flowmapsr-*")], "the result folder should exist"
        proc.send_signal(getattr(signal, sig))
        log, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, log[-2000:]
    assert "Traceback" not in log, log[-2000:]
    assert not list(temp.glob("flowmapsr-*"))
