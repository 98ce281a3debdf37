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

import numpy as np
import pytest
from PIL import Image

from flowmapsr.inference.random_model import random_pipeline

pytest.importorskip("gradio", reason="flowmapsr serve needs gradio (pip install '.[serve]')")

from flowmapsr.serve.app import build_app, launch, make_handler  # noqa: E402

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
    (_, after2), _, _ = handler(str(src), 2, 2, 1.0, 1.0, 0, 8, 4, "wavelet")
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
