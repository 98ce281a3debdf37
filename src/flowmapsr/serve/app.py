"""The ``flowmapsr serve`` page: upload, the upscaler's knobs, before/after slider, download.

Built with Gradio Blocks. The upload reaches the handler as a file path, untouched by Gradio
(:class:`UploadImage`), and is read with the CLI's reader (EXIF orientation, 16-bit, ICC, alpha,
the pixel limit), so a non-image or an unreadable file gets the project's one-line message, not
Gradio's preprocessing error with server paths in it. It is upscaled by
:func:`~flowmapsr.inference.api.upscale_picture` and written as PNG for download; the slider
compares a bicubic enlargement ("before") with the result ("after") at the same size.

Bounds: the knobs are checked in the handler with the CLI's parse-time bounds
(:func:`flowmapsr.cli.common.bounded`: scale 1–16, steps 1–1000, tile 0 or 16–65536), so a
request that skips the widgets gets the same refusal; the cost of each request is bounded by
the CLI's ceiling (:mod:`flowmapsr.inference.cost`: output megapixels, and seconds estimated from
the cost measured in this server process, ``flowmapsr serve --max-megapixels/--max-seconds``),
checked from the upload's header before it is decoded; the queue is bounded (``queue_size``
waiting requests, one running at a time) and uploads are capped at ``max_upload_mb``; the server
binds to ``127.0.0.1`` unless told otherwise (``flowmapsr.cli.serve``). Results live in one temp
folder per handler, of which only the last ``keep_results`` requests' files are kept (Gradio
copies each download into its own cache, which ``delete_cache`` sweeps); the folder is removed
when the handler is collected or the process exits. A user error logs one line, not a traceback.
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path

from flowmapsr.inference.colorfix import METHODS as COLOR_FIXES

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local tool

DEFAULT_MAX_UPLOAD_MB = 20
DEFAULT_QUEUE_SIZE = 8
DEFAULT_MAX_PIXELS = 4_000_000  # input pixels per request (a web page should answer in minutes)
# Estimated seconds per request: a page should answer in minutes, not the CLI's half hour.
DEFAULT_MAX_SECONDS = 300.0
DEFAULT_KEEP_RESULTS = 16  # result folders kept on disk (Gradio serves its own copy of each)
GRADIO_CACHE_SWEEP = (600, 3600)  # every 10 min, delete Gradio's cached files older than 1 h

log = logging.getLogger("flowmapsr.serve")


def _knob_parsers() -> dict:
    """The handler's numeric knobs, each checked by the CLI's own ``bounded`` parser."""
    from flowmapsr.cli.common import bounded
    from flowmapsr.cli.upscale import MAX_SCALE, MAX_STEPS, MAX_TILE, MIN_TILE

    finite = bounded(float)
    return {
        "scale": bounded(float, 1, MAX_SCALE),
        "steps": bounded(int, 1, MAX_STEPS),
        "guidance": finite,
        "lora_scale": finite,
        "seed": bounded(int, 0, 2**63 - 1),
        "tile": bounded(int, MIN_TILE, MAX_TILE, zero="untiled"),
        "overlap": bounded(int, 0, MAX_TILE),
    }


def _as_text(value) -> str:
    """A widget's value as the CLI would read it: ``4.0`` from a Number is ``"4"``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def check_knobs(**knobs) -> dict:
    """``knobs`` parsed with the CLI's bounds; a bad one raises ``ValueError("NAME: reason")``."""
    parsers = _knob_parsers()
    out = {}
    for name, value in knobs.items():
        try:
            out[name] = parsers[name](_as_text(value))
        except argparse.ArgumentTypeError as err:
            raise ValueError(f"{name.replace('_', ' ')}: {err}") from None
    return out


class ResultFolders:
    """Per-request output folders under one temp root, keeping only the newest ``keep``.

    Gradio copies every returned file into its own cache before serving it, so an older folder
    can go as soon as it is no longer among the last ``keep``; the root (``flowmapsr-*``) is
    removed by :meth:`close`, when this object is collected, or at interpreter exit.
    """

    def __init__(self, keep: int = DEFAULT_KEEP_RESULTS, parent: str | None = None):
        if keep < 1:
            raise ValueError(f"keep must be at least 1, got {keep}")
        self.keep = keep
        self.root = Path(tempfile.mkdtemp(prefix="flowmapsr-", dir=parent))
        self._dirs: collections.deque[Path] = collections.deque()
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.root), True)

    def new(self) -> Path:
        """A fresh folder for one request; the oldest beyond ``keep`` are deleted."""
        with self._lock:
            path = Path(tempfile.mkdtemp(prefix="req-", dir=self.root))
            self._dirs.append(path)
            while len(self._dirs) > self.keep:
                shutil.rmtree(self._dirs.popleft(), ignore_errors=True)
            return path

    def close(self) -> None:
        """Remove the root and every folder in it."""
        self._finalizer()


def _bicubic(pic, size):
    """A :class:`Picture` resized with bicubic to ``size = (h, w)``: the slider's "before"."""
    from flowmapsr.imageio import Picture
    from flowmapsr.inference.api import _resize

    alpha = None if pic.alpha is None else _resize(pic.alpha, size)
    return Picture(_resize(pic.color, size), alpha, pic.icc)


def web_ceiling(max_megapixels: float | None = None, max_seconds: float | None = None):
    """The page's :class:`~flowmapsr.inference.cost.Ceiling` (None: the defaults; 0: no limit),
    its messages naming the server's options."""
    from flowmapsr.inference.cost import DEFAULT_MAX_MEGAPIXELS, Ceiling

    mp = DEFAULT_MAX_MEGAPIXELS if max_megapixels is None else max_megapixels
    seconds = DEFAULT_MAX_SECONDS if max_seconds is None else max_seconds
    return Ceiling(
        mp or None,
        seconds or None,
        megapixels_flag="flowmapsr serve --max-megapixels",
        seconds_flag="flowmapsr serve --max-seconds",
    )


def make_handler(
    pipe,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    out_root: str | None = None,
    keep_results: int = DEFAULT_KEEP_RESULTS,
    ceiling=None,
    meter=None,
):
    """The button's callback: ``(path, knobs…) → ((before, after), download path, info)``.

    A user error (no upload, not an image, too large, over the cost ``ceiling`` (default
    :func:`web_ceiling`), a knob out of bounds) raises a ``gr.Error`` with a one-line message
    naming the upload by its own name and logs that line, without a traceback. ``meter``: the
    :class:`~flowmapsr.inference.cost.CostMeter` (default: a new one, measuring this process's
    requests). The callback's :class:`ResultFolders` is its ``results`` attribute, its meter
    its ``meter``.
    """
    from flowmapsr.imageio import (
        ImageReadError,
        picture_to_pil,
        probe_size,
        read_image,
        write_image,
    )
    from flowmapsr.inference import cost
    from flowmapsr.inference.api import upscale_picture
    from flowmapsr.inference.pipeline import mode_knobs

    ceiling = web_ceiling() if ceiling is None else ceiling
    meter = cost.CostMeter() if meter is None else meter

    lock = threading.Lock()  # one model, one request at a time (the queue holds the rest)
    results = ResultFolders(keep_results, out_root)

    def refuse(msg: str):
        import gradio as gr

        log.warning("refused: %s", msg)
        return gr.Error(msg, print_exception=False)

    def handler(path, scale, steps, guidance, lora_scale, seed, tile, overlap, color_fix):
        if not path:
            raise refuse("upload an image first")
        try:
            k = check_knobs(
                scale=scale,
                steps=steps,
                guidance=guidance,
                lora_scale=lora_scale,
                seed=seed,
                tile=tile,
                overlap=overlap,
            )
        except ValueError as err:
            raise refuse(str(err)) from None
        if str(color_fix) not in COLOR_FIXES:
            allowed = f"{', '.join(COLOR_FIXES[:-1])} or {COLOR_FIXES[-1]}"
            raise refuse(f"colour fix: must be {allowed}, got '{color_fix}'")
        name = Path(path).name
        steps = mode_knobs(pipe.config, None, k["steps"])["steps"]

        def refuse_cost(h: int, w: int) -> cost.Work:
            work = cost.plan_work(h, w, k["scale"], pipe.config.scales, steps)
            why = meter.refusal(name, work, ceiling)
            if why:
                raise refuse(why)
            return work

        try:
            h, w = probe_size(path, oriented=True)
        except ImageReadError:
            h = w = None  # read_image says what is wrong, in its own words
        if h is not None and h * w <= max_pixels:  # else the pixel guard's message
            refuse_cost(h, w)  # from the header, before a pixel is decoded
        try:
            pic = read_image(path, max_pixels=max_pixels)
        except ImageReadError as err:
            # The message names the server-side upload path; the user knows the file by name.
            raise refuse(str(err).replace(str(path), name)) from None
        work = refuse_cost(*pic.size)
        tile = k["tile"] or None
        overlap = min(k["overlap"], tile // 2) if tile else None
        t0 = time.perf_counter()
        with lock:
            watch = meter.watch(name, work, ceiling)
            try:
                res = upscale_picture(
                    pipe,
                    pic,
                    scale=k["scale"],
                    steps=k["steps"],
                    guidance=k["guidance"],
                    lora_scale=k["lora_scale"],
                    seed=k["seed"],
                    tile=tile,
                    overlap=overlap,
                    color_fix=str(color_fix),
                    on_tile=watch,
                )
            except cost.CostRefused as err:  # extrapolated from its first tiles (unmeasured yet)
                raise refuse(str(err)) from None
        seconds = time.perf_counter() - t0
        out_path = write_image(results.new() / f"{Path(path).stem}_x{k['scale']:g}.png", res)
        before = picture_to_pil(_bicubic(pic, res.size), eight_bit=True)
        after = picture_to_pil(res, eight_bit=True)
        (h, w), (oh, ow) = pic.size, res.size
        est = "" if watch.estimate is None else f", estimated {watch.estimate:.1f} s"
        info = (
            f"{w}×{h} → {ow}×{oh} in {seconds:.1f} s{est} ({k['steps']} step(s), x{k['scale']:g})"
        )
        log.info("%s: %s", name, info)
        return (before, after), str(out_path), info

    handler.results = results
    handler.meter = meter
    return handler


def _upload_image_class():
    """:class:`gradio.Image` that hands the handler the uploaded file's path without opening it.

    Gradio's own preprocessing opens every upload with PIL, so a text file named ``.png`` fails
    there with a raw error naming server paths, before the handler (and our reader, with its
    one-line messages and pixel limit) sees it. The front end stays Gradio's image widget.
    """
    import gradio as gr

    class UploadImage(gr.Image):
        def get_block_name(self) -> str:
            return "image"  # the Svelte component to use: Gradio's own

        def preprocess(self, payload):
            if payload is None or (payload.url or "").startswith("data:"):
                return super().preprocess(payload)  # pasted data URLs: Gradio decodes them
            return None if payload.path is None else str(payload.path)

    return UploadImage


def available_modes(cfg) -> list[str]:
    """The modes ``cfg`` defines, in ``MODES`` order (``balanced`` always: the defaults)."""
    from flowmapsr.inference.pipeline import DEFAULT_MODE, MODES

    return [m for m in MODES if m == DEFAULT_MODE or m in cfg.modes]


def build_app(
    pipe,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    queue_size: int = DEFAULT_QUEUE_SIZE,
    ceiling=None,
):
    """The Gradio Blocks app around a loaded :class:`~flowmapsr.inference.pipeline.SRPipeline`;
    ``ceiling``: the cost ceiling per request (default :func:`web_ceiling`)."""
    import gradio as gr

    from flowmapsr.cli.upscale import MAX_STEPS, MAX_TILE
    from flowmapsr.inference.pipeline import DEFAULT_MODE, mode_knobs

    cfg = pipe.config
    handler = make_handler(pipe, max_pixels, ceiling=ceiling)
    with gr.Blocks(
        title="flowmapsr", analytics_enabled=False, delete_cache=GRADIO_CACHE_SWEEP
    ) as app:
        gr.Markdown(
            "# flowmapsr\nFast super-resolution with flow maps. Upload an image, pick the "
            "knobs, press **Upscale**; drag the slider to compare with bicubic."
        )
        with gr.Row():
            with gr.Column():
                image = _upload_image_class()(
                    type="filepath",
                    label="Input image",
                    sources=["upload"],
                    image_mode=None,
                    elem_id="input-image",
                )
                scale = gr.Dropdown(choices=[2, 3, 4, 8], value=4, label="Scale", elem_id="scale")
                mode = gr.Radio(
                    list(available_modes(cfg)),
                    value=DEFAULT_MODE,
                    label="Mode (fidelity ↔ realism; sets the three knobs below)",
                    elem_id="mode",
                )
                steps = gr.Slider(
                    1, min(8, MAX_STEPS), value=cfg.steps, step=1, label="Steps (NFE)"
                )
                guidance = gr.Slider(
                    0.0, 4.0, value=cfg.guidance, step=0.05, label="Guidance ω (realism)"
                )
                lora = gr.Slider(
                    0.0, 2.0, value=cfg.lora_scale, step=0.05, label="LoRA scale (sharpness)"
                )
                seed = gr.Number(value=0, precision=0, minimum=0, label="Seed")
                with gr.Row():
                    tile = gr.Number(
                        value=256,
                        precision=0,
                        minimum=0,
                        maximum=MAX_TILE,
                        label="Tile (input px: 0 = off, else ≥ 16)",
                    )
                    overlap = gr.Number(
                        value=32,
                        precision=0,
                        minimum=0,
                        maximum=MAX_TILE,
                        label="Overlap (input px)",
                    )
                color_fix = gr.Radio(list(COLOR_FIXES), value="none", label="Colour fix")
                button = gr.Button("Upscale", variant="primary", elem_id="upscale-btn")
            with gr.Column():
                slider = gr.ImageSlider(
                    label="Before (bicubic) / after", type="pil", format="png", elem_id="result"
                )
                download = gr.File(label="Download PNG", elem_id="download")
                info = gr.Textbox(label="Info", interactive=False, elem_id="info")
        mode.change(
            lambda name: tuple(mode_knobs(cfg, name).values()),
            inputs=[mode],
            outputs=[steps, guidance, lora],
        )
        button.click(
            handler,
            inputs=[image, scale, steps, guidance, lora, seed, tile, overlap, color_fix],
            outputs=[slider, download, info],
            concurrency_limit=1,
        )
    app.queue(max_size=queue_size, default_concurrency_limit=1)
    app.flowmapsr_results = handler.results  # for close_app: the result folders to remove
    return app


def launch(
    app,
    host: str = "127.0.0.1",
    port: int | None = None,
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    block: bool = True,
):
    """Serve ``app`` on ``host:port`` with the upload size limit; returns Gradio's launch tuple."""
    return app.launch(
        server_name=host,
        server_port=port,
        max_file_size=f"{max_upload_mb:g}mb",
        prevent_thread_lock=not block,
        quiet=not block,
        share=False,
        show_error=True,
    )


def close_app(app) -> None:
    """Stop serving ``app`` and remove its result folders."""
    app.close()
    results = getattr(app, "flowmapsr_results", None)
    if results is not None:
        results.close()
