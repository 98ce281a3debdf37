"""The ``flowmapsr serve`` page: upload, the upscaler's knobs, before/after slider, download.

Built with Gradio Blocks. The uploaded file is read with the CLI's reader (EXIF orientation,
16-bit, ICC, alpha, the pixel limit), upscaled by :func:`~flowmapsr.inference.api.upscale_picture`
and written as PNG for download; the slider compares a bicubic enlargement ("before") with the
result ("after") at the same size. The queue is bounded (``queue_size`` waiting requests, one
running at a time) and uploads are capped at ``max_upload_mb``; the server binds to
``127.0.0.1`` unless told otherwise (``flowmapsr.cli.serve``).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls home from a local tool

DEFAULT_MAX_UPLOAD_MB = 20
DEFAULT_QUEUE_SIZE = 8
DEFAULT_MAX_PIXELS = 4_000_000  # input pixels per request (a web page should answer in minutes)


def _bicubic(pic, size):
    """A :class:`Picture` resized with bicubic to ``size = (h, w)``: the slider's "before"."""
    from flowmapsr.imageio import Picture
    from flowmapsr.inference.api import _resize

    alpha = None if pic.alpha is None else _resize(pic.alpha, size)
    return Picture(_resize(pic.color, size), alpha, pic.icc)


def make_handler(pipe, max_pixels: int = DEFAULT_MAX_PIXELS, out_root: str | None = None):
    """The button's callback: ``(path, knobs…) → ((before, after), download path, info)``."""
    from flowmapsr.imageio import (
        ImageReadError,
        picture_to_pil,
        read_image,
        write_image,
    )
    from flowmapsr.inference.api import upscale_picture

    lock = threading.Lock()  # one model, one request at a time (the queue holds the rest)

    def handler(path, scale, steps, guidance, lora_scale, seed, tile, overlap, color_fix):
        import gradio as gr

        if not path:
            raise gr.Error("upload an image first")
        try:
            pic = read_image(path, max_pixels=max_pixels)
        except ImageReadError as err:
            raise gr.Error(str(err).replace(str(path), Path(path).name)) from None
        tile = int(tile) or None
        overlap = min(int(overlap), tile // 2) if tile else None
        t0 = time.perf_counter()
        with lock:
            res = upscale_picture(
                pipe,
                pic,
                scale=float(scale),
                steps=int(steps),
                guidance=float(guidance),
                lora_scale=float(lora_scale),
                seed=int(seed),
                tile=tile,
                overlap=overlap,
                color_fix=str(color_fix),
            )
        seconds = time.perf_counter() - t0
        out_dir = Path(tempfile.mkdtemp(prefix="flowmapsr-", dir=out_root))
        out_path = write_image(out_dir / f"{Path(path).stem}_x{scale:g}.png", res)
        before = picture_to_pil(_bicubic(pic, res.size), eight_bit=True)
        after = picture_to_pil(res, eight_bit=True)
        (h, w), (oh, ow) = pic.size, res.size
        info = f"{w}×{h} → {ow}×{oh} in {seconds:.1f} s ({steps} step(s), x{scale:g})"
        return (before, after), str(out_path), info

    return handler


def available_modes(cfg) -> list[str]:
    """The modes ``cfg`` defines, in ``MODES`` order (``balanced`` always: the defaults)."""
    from flowmapsr.inference.pipeline import DEFAULT_MODE, MODES

    return [m for m in MODES if m == DEFAULT_MODE or m in cfg.modes]


def build_app(
    pipe,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    queue_size: int = DEFAULT_QUEUE_SIZE,
):
    """The Gradio Blocks app around a loaded :class:`~flowmapsr.inference.pipeline.SRPipeline`."""
    import gradio as gr

    from flowmapsr.inference.pipeline import DEFAULT_MODE, mode_knobs

    cfg = pipe.config
    handler = make_handler(pipe, max_pixels)
    with gr.Blocks(title="flowmapsr", analytics_enabled=False) as app:
        gr.Markdown(
            "# flowmapsr\nFast super-resolution with flow maps. Upload an image, pick the "
            "knobs, press **Upscale**; drag the slider to compare with bicubic."
        )
        with gr.Row():
            with gr.Column():
                image = gr.Image(
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
                steps = gr.Slider(1, 8, value=cfg.steps, step=1, label="Steps (NFE)")
                guidance = gr.Slider(
                    0.0, 4.0, value=cfg.guidance, step=0.05, label="Guidance ω (realism)"
                )
                lora = gr.Slider(
                    0.0, 2.0, value=cfg.lora_scale, step=0.05, label="LoRA scale (sharpness)"
                )
                seed = gr.Number(value=0, precision=0, label="Seed")
                with gr.Row():
                    tile = gr.Number(value=256, precision=0, label="Tile (input px, 0 = off)")
                    overlap = gr.Number(value=32, precision=0, label="Overlap (input px)")
                color_fix = gr.Radio(["none", "wavelet", "adain"], value="none", label="Colour fix")
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
