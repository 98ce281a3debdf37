"""``flowmapsr upscale INPUT... -o OUT_DIR``: upscale files, folders (recursive) and globs.

Each input is read, upscaled tile by tile and written atomically to ``OUT_DIR/<stem>.<format>``
(folders keep their sub-folder layout). A bad input gets a one-line error and the others go on;
the exit code is 0 only when every input succeeded (existing outputs kept without
``--overwrite`` count as skipped, not failed). Inputs are never overwritten (checked on resolved
paths and inodes, so links count); inputs that would share an output name keep their suffix in
it (``photo.jpg.png``, ``photo.png.png``), which a note and the summary report. The output
folder is created and checked writable before the model loads; temp files an earlier killed run
left there (our ``.NAME.XXXXXXXX.tmp`` pattern, unlocked) are removed, and said; when every output
already exists nothing is loaded. SIGTERM stops like SIGINT: the current file's temp is dropped,
the summary printed, exit code 128 + the signal. Without a terminal (a log, CI) progress is one
line per image, with its work estimate.

Bit depth (:mod:`flowmapsr.imageio`): 8-bit input gives 8-bit output; 16-bit input stays 16-bit
in PNG and TIFF; float32 input (TIFF, nominal [0, 1], values outside clipped with a note) stays
float32 with ``--format tif`` and becomes 16-bit PNG. A format that holds fewer bits than the
input (PNG for float, JPEG/WebP for 16-bit or float) gets a note naming the file.

Bounded cost (:mod:`flowmapsr.inference.cost`): before each image, its output megapixels (from
the file header, nothing decoded) and its estimated seconds = output megapixels × the cost in
seconds per output megapixel *measured in this run on this machine* (timed tiles; the first
large image is extrapolated from its own first tiles) are checked against ``--max-megapixels``
and ``--max-seconds``; an image over either is refused in one line naming the file, the
estimate and the option that lifts it, and the batch goes on (exit code 1). A measured figure
rather than one stored with the model, because the cost depends on this machine's free cores,
the precision, tile size and steps.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

DEFAULT_TILE = 256  # LR pixels: ~1 MP output tiles at x4, a few hundred MB of activations
DEFAULT_OVERLAP = 32
MIN_TILE = 16  # LR pixels: ≥ every backbone's tile alignment (4); smaller tiles only cost time
MAX_TILE = 65536
MAX_SCALE = 16  # a 1 MP input at x16 is already a 256 MP output
MAX_STEPS = 1000
# flowmapsr.inference.cost.DEFAULT_MAX_MEGAPIXELS / DEFAULT_MAX_SECONDS (import-free --help);
# tests/cli/test_upscale.py checks that they agree.
DEFAULT_MAX_MEGAPIXELS = 500
DEFAULT_MAX_SECONDS = 1800


# The modes of flowmapsr.inference.pipeline.MODES, spelled out so that --help stays import-free.
MODE_CHOICES = ("fidelity", "balanced", "realism")
# flowmapsr.inference.api.PRECISION_CHOICES, spelled out for the same reason.
PRECISION_CHOICES = ("auto", "fp32", "bf16")


def add_parser(subparsers) -> argparse.ArgumentParser:
    from flowmapsr.cli.common import bounded

    p = subparsers.add_parser(
        "upscale",
        help="upscale image files, folders and globs",
        description="Upscale image files, folders (recursive) and globs into OUT_DIR; exit code "
        "0 only when every input succeeded.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders or globs")
    p.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="output folder")
    p.add_argument("--model", metavar="DIR", help="pipeline folder (default: built-in model)")
    p.add_argument(
        "--scale",
        type=bounded(float, 1, MAX_SCALE),
        default=4.0,
        help=f"2, 4, 8 or any factor in 1–{MAX_SCALE} (default 4)",
    )
    p.add_argument(
        "--mode",
        choices=MODE_CHOICES,
        default=None,
        help="fidelity ↔ realism: the model's measured settings for each (default: balanced); "
        "--steps, --guidance and --lora-scale override them",
    )
    p.add_argument(
        "--steps",
        type=bounded(int, 1, MAX_STEPS),
        default=None,
        help="network evaluations (default: model's)",
    )
    finite = bounded(float)
    p.add_argument("--guidance", type=finite, default=None, help="guidance ω (default: model's)")
    p.add_argument("--lora-scale", type=finite, default=None, help="LoRA scale (default: model's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the source noise (default 0)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default="auto",
        help="network precision (auto: bf16 on CPUs with fast bf16 kernels when the model's "
        "config says its bf16 cost was measured small, else fp32)",
    )
    p.add_argument(
        "--tile",
        type=bounded(int, MIN_TILE, MAX_TILE, zero="untiled"),
        default=DEFAULT_TILE,
        help=f"tile size in input pixels, ≥ {MIN_TILE}; 0 = untiled (default {DEFAULT_TILE})",
    )
    p.add_argument(
        "--overlap",
        type=bounded(int, 0, MAX_TILE),
        default=None,
        help=f"tile overlap in input pixels (default: {DEFAULT_OVERLAP}, at most tile/4)",
    )
    p.add_argument(
        "--color-fix",
        choices=["none", "wavelet", "adain"],
        default="none",
        help="match colours to the upsampled input (default none)",
    )
    p.add_argument(
        "--first-frame",
        action="store_true",
        help="upscale frame 0 of a multi-frame input (animated GIF/PNG/WebP, multi-page TIFF); "
        "without it such a file is refused, never silently cut to one frame",
    )
    p.add_argument(
        "--format",
        choices=["png", "tif", "jpg", "webp"],
        default="png",
        help="output format (default png). Bit depth is kept where the format can hold it: "
        "8-bit stays 8-bit, 16-bit stays 16-bit in png/tif, float32 (TIFF) stays float32 in "
        "tif and becomes 16-bit in png; jpg/webp are 8-bit (a note says when bits are lost)",
    )
    p.add_argument(
        "--quality",
        type=bounded(int, 1, 100),
        default=95,
        help="JPEG/WebP quality 1–100 (default 95)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument(
        "--max-pixels",
        type=bounded(int, 1, 10**12),
        default=None,
        help="refuse inputs with more pixels than this (decompression-bomb guard; "
        "default 50,000,000)",
    )
    p.add_argument(
        "--max-megapixels",
        type=bounded(float, 0.01, 1e6, zero="no limit"),
        default=DEFAULT_MAX_MEGAPIXELS,
        help="refuse images whose output has more megapixels than this (default "
        f"{DEFAULT_MAX_MEGAPIXELS}: a 30 MP photo at x4 fits; 0 = no limit)",
    )
    p.add_argument(
        "--max-seconds",
        type=bounded(float, 0.1, 1e9, zero="no limit"),
        default=DEFAULT_MAX_SECONDS,
        help="refuse images estimated to take longer than this, from the cost per output "
        f"megapixel measured in this run (default {DEFAULT_MAX_SECONDS}; 0 = no limit)",
    )
    return p


def _err(msg: str) -> None:
    print(f"flowmapsr upscale: error: {msg}", file=sys.stderr)


def _note(msg: str) -> None:
    print(f"flowmapsr upscale: note: {msg}", file=sys.stderr)


@contextlib.contextmanager
def _signals_as_interrupts():
    """SIGTERM raises KeyboardInterrupt like SIGINT does, so a ``kill`` (a CI timeout, a
    container stop) gets the same clean stop: the current file's temp is dropped by the atomic
    write, the summary is printed. Yields a dict whose ``"signal"`` is the one received."""
    caught: dict = {}
    if threading.current_thread() is not threading.main_thread():
        yield caught  # signal handlers can only be set from the main thread
        return

    def handler(signum, frame):
        caught["signal"] = signum
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield caught
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _is_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[")


def collect_inputs(
    items: list[str], suffixes, out_dir: Path | None = None
) -> tuple[list[tuple[Path, Path]], list[str]]:
    """``[(input file, output path relative to OUT_DIR without suffix)]`` and error lines.

    Folders are searched recursively for image suffixes (skipping anything inside ``out_dir``,
    so earlier outputs are not upscaled again) and keep their sub-folder layout; files and glob
    matches go flat under their stem. A name that matches nothing is an error.
    """
    skip = out_dir.resolve() if out_dir is not None else None

    def wanted(f: Path) -> bool:
        if not f.is_file() or f.suffix.lower() not in suffixes:
            return False
        return skip is None or not f.resolve().is_relative_to(skip)

    found: list[tuple[Path, Path]] = []
    errors: list[str] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            files = sorted(f for f in path.rglob("*") if wanted(f))
            if not files:
                errors.append(f"{item}: folder holds no image files")
            found += [(f, f.relative_to(path).with_suffix("")) for f in files]
        elif path.exists() or not _is_glob(item):
            found.append((path, Path(path.stem)))  # a missing file fails later, by name
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True))
            files = [m for m in matches if m.is_file()]
            if not files:
                errors.append(f"{item}: no file matches")
            found += [(f, Path(f.stem)) for f in files]
    return found, errors


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _identity(path: Path):
    """What makes two paths one file: (device, inode) when it exists, else the resolved path."""
    try:
        st = path.stat()
        return (st.st_dev, st.st_ino)
    except OSError:
        return path.resolve()


def plan_outputs(
    jobs: list[tuple[Path, Path]], out_dir: Path, suffix: str
) -> tuple[list[tuple[Path, Path]], list[str], list[str], int]:
    """``[(input, output path)]``, notes, error lines and the number of renamed outputs for
    ``collect_inputs``' jobs.

    Decided for the whole batch before any work, so that nothing depends on which file fails:
    an input listed twice is upscaled once; inputs that would share an output (``photo.jpg`` and
    ``photo.png``) each keep their input suffix in the name instead (``photo.jpg.png``,
    ``photo.png.png``; ``-2``, ``-3`` ... if that is still taken), and a note says so; an output
    that is an input of this run (same resolved path, or the same file through a symlink or a
    hard link) is an error for that input: inputs are never written.
    """
    notes: list[str] = []
    unique: list[tuple[Path, Path]] = []
    first: dict = {}
    for src, rel in jobs:
        ident = _identity(src)
        if ident in first:
            notes.append(f"{src}: listed more than once (as {first[ident]}); upscaled once")
            continue
        first[ident] = src
        unique.append((src, rel))
    inputs = set(first) | {src.resolve() for src, _ in unique}

    def key(dst: Path):
        return os.path.normcase(dst.resolve())

    wanted = [out_dir / rel.parent / (rel.name + suffix) for _, rel in unique]
    count: dict = {}
    for dst in wanted:
        count[key(dst)] = count.get(key(dst), 0) + 1
    planned, errors, used, renamed = [], [], set(), 0
    for (src, rel), first_choice in zip(unique, wanted, strict=True):
        dst = first_choice
        if count[key(dst)] > 1 or key(dst) in used:
            base = out_dir / rel.parent / (rel.name + src.suffix.lower())
            dst, n = base.with_name(base.name + suffix), 2
            while key(dst) in used or key(dst) in count:
                dst, n = base.with_name(f"{base.name}-{n}{suffix}"), n + 1
            notes.append(f"{src}: another input also maps to {first_choice}; written as {dst}")
            renamed += 1
        used.add(key(dst))
        if dst.resolve() in inputs or _identity(dst) in inputs:
            errors.append(
                f"{src}: output {dst} is an input of this run; refusing to overwrite an input"
            )
            continue
        planned.append((src, dst))
    return planned, notes, errors, renamed


def prepare_out_dir(out_dir: Path) -> str | None:
    """Create ``out_dir`` and check that files can be made in it; an error line, or None."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"output folder {out_dir} exists and is not a folder"
    except OSError as err:
        return f"cannot create output folder {out_dir}: {err.strerror or err}"
    if not out_dir.is_dir():
        return f"output folder {out_dir} exists and is not a folder"
    try:
        # Named like an atomic write's temp (.NAME.XXXXXXXX.tmp, NAME an image name), so a probe
        # that a kill left behind is one of the stale temps the next run removes.
        fd, probe = tempfile.mkstemp(dir=out_dir, prefix=".flowmapsr-probe.png.", suffix=".tmp")
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):  # another run's cleanup took it: fine
            os.unlink(probe)
    except OSError as err:
        return f"output folder {out_dir} is not writable: {err.strerror or err}"
    return None


def _bits_kept(bits: int, fmt: str) -> int:
    """Bits per sample ``fmt`` stores for an input of ``bits`` (8, 16, 32 = float32); see
    :func:`flowmapsr.imageio.write_image`."""
    most = {"tif": 32, "png": 16}.get(fmt, 8)
    return min(bits, most)


def _depth(bits: int) -> str:
    return "float32" if bits == 32 else f"{bits}-bit"


def _seconds(x: float | None) -> str:
    """An estimate for the log: ``12 s``, ``0.4 s``, or ``unmeasured``."""
    if x is None:
        return "unmeasured"  # no usable tile timed yet (see flowmapsr.inference.cost)
    return f"{x:.0f} s" if x >= 10 else f"{x:.1f} s"


def _reason(err: BaseException) -> str:
    """One line for ``err``, without the temp-file name an OSError from an atomic write carries."""
    if isinstance(err, OSError) and err.strerror and err.filename:
        return err.strerror
    text = str(err)
    return text.splitlines()[0] if text else type(err).__name__


def run(args: argparse.Namespace) -> int:
    # Each number was bounded when parsed (``bounded``); only the pair tile/overlap is left.
    if args.overlap is None:
        args.overlap = min(DEFAULT_OVERLAP, args.tile // 4)
    if args.tile and args.overlap >= args.tile:
        _err(f"--overlap must be below --tile, got {args.overlap} and {args.tile}")
        return 2

    from tqdm import tqdm

    from flowmapsr.atomic import remove_stale_temps
    from flowmapsr.cli.common import load_pipeline_or_none
    from flowmapsr.imageio import (
        DEFAULT_MAX_PIXELS,
        FORMATS,
        IMAGE_SUFFIXES,
        ImageReadError,
        probe_size,
        read_image,
        write_image,
    )
    from flowmapsr.inference import cost
    from flowmapsr.inference.api import bf16_fast_on_cpu, upscale_picture

    ceiling = cost.Ceiling(args.max_megapixels or None, args.max_seconds or None)
    meter = cost.CostMeter()

    max_pixels = DEFAULT_MAX_PIXELS if args.max_pixels is None else args.max_pixels
    out_dir = Path(args.output)
    problem = prepare_out_dir(out_dir)  # before the model loads: fail in a second, not later
    if problem:
        _err(problem)
        return 2
    found, errors = collect_inputs(args.inputs, IMAGE_SUFFIXES, out_dir)
    jobs, notes, refused, renamed = plan_outputs(found, out_dir, FORMATS[args.format])
    for line in errors + refused:
        _err(line)
    for folder in sorted({out_dir} | {dst.parent for _, dst in jobs}):
        stale = remove_stale_temps(folder, FORMATS.values())
        if stale:
            names = ", ".join(p.name for p in stale[:3]) + (", ..." if len(stale) > 3 else "")
            notes.append(
                f"removed {len(stale)} temp file(s) an interrupted run left in {folder} ({names})"
            )
    for line in notes:
        _note(line)

    failed, done, skipped = len(errors) + len(refused), 0, 0
    todo = []
    for src, dst in jobs:
        if dst.exists() and not args.overwrite and not _same_file(src, dst):
            print(f"{src}: {dst} exists, kept (use --overwrite)", file=sys.stderr)
            skipped += 1
        else:
            todo.append((src, dst))
    pipe, stopped, failed_before, over_ceiling = None, None, failed, 0
    seconds, megapixels = 0.0, 0.0
    tile = args.tile or None
    start = time.perf_counter()
    interactive = sys.stderr.isatty()  # a terminal gets bars; a log gets one line per image
    bar = tqdm(todo, desc="images", unit="img", file=sys.stderr, disable=not interactive)
    with _signals_as_interrupts() as caught:
        try:
            if todo:  # a rerun with every output in place needs no model
                pipe = load_pipeline_or_none("upscale", args.model, args.device, args.precision)
                if pipe is None:
                    return 2
                from flowmapsr.inference.pipeline import mode_knobs

                try:
                    knobs = mode_knobs(
                        pipe.config, args.mode, args.steps, args.guidance, args.lora_scale
                    )
                except ValueError as err:
                    _err(f"--mode {args.mode}: {err}")
                    return 2
                if args.mode is not None:
                    _note(f"mode {args.mode}: {knobs}")
                slow_bf16 = pipe.precision == "bf16" and not bf16_fast_on_cpu()
                if pipe.device.type == "cpu" and slow_bf16:
                    _note(
                        "this CPU has no AVX-512 BF16/AMX; bf16 convolutions fall back to a slow "
                        "path here (measured ~55x slower than fp32); prefer fp32"
                    )
            for current, (src, dst) in enumerate(bar, 1):
                if _same_file(src, dst):
                    _err(f"{src}: output {dst} is the input itself; refusing to overwrite an input")
                    failed += 1
                    continue
                t0 = time.perf_counter()
                try:
                    try:  # the header's size: refuse before decoding a pixel
                        h, w = probe_size(src, oriented=True)
                    except ImageReadError:
                        h = w = None  # read_image says what is wrong, in its own words
                    if h is not None and h * w <= max_pixels:  # else the pixel guard's message
                        work = cost.plan_work(h, w, args.scale, pipe.config.scales, knobs["steps"])
                        why = meter.refusal(str(src), work, ceiling)
                        if why:
                            raise cost.CostRefused(why)
                    pic = read_image(src, max_pixels=max_pixels, first_frame=args.first_frame)
                    h, w = pic.size
                    work = cost.plan_work(h, w, args.scale, pipe.config.scales, knobs["steps"])
                    why = meter.refusal(str(src), work, ceiling)  # a header can lie
                    if why:
                        raise cost.CostRefused(why)
                    for line in pic.notes:  # e.g. float values outside [0, 1] clipped
                        _note(line)
                    if pic.frames > 1:  # only with --first-frame; said, never silent
                        _note(f"{src}: {pic.frames} frames; frame 0 only (--first-frame)")
                    kept = _bits_kept(pic.bits, args.format)
                    if kept < pic.bits:  # said, never silent
                        _note(
                            f"{src}: {_depth(pic.bits)} input written as {_depth(kept)} "
                            f"{args.format.upper()}"
                            + (" (--format tif keeps float32)" if pic.bits == 32 else "")
                        )
                    tiles = tqdm(
                        desc="tiles",
                        unit="tile",
                        leave=False,
                        file=sys.stderr,
                        disable=not interactive,
                    )

                    def on_tile(n: int, total: int, tiles=tiles) -> None:
                        tiles.total = total
                        tiles.update(n - tiles.n)

                    watch = meter.watch(str(src), work, ceiling, on_tile)
                    if watch.estimate is not None:
                        bar.set_postfix_str(f"{src.name}: estimated {_seconds(watch.estimate)}")
                    try:
                        res = upscale_picture(
                            pipe,
                            pic,
                            scale=args.scale,
                            steps=args.steps,
                            guidance=args.guidance,
                            lora_scale=args.lora_scale,
                            seed=args.seed,
                            tile=tile,
                            overlap=args.overlap if tile else None,
                            color_fix=args.color_fix,
                            on_tile=watch,
                            mode=args.mode,
                        )
                    finally:
                        tiles.close()
                    del pic
                    write_image(dst, res, fmt=args.format, quality=args.quality, consume=True)
                except cost.CostRefused as err:
                    _err(str(err))
                    failed, over_ceiling = failed + 1, over_ceiling + 1
                    continue
                except ImageReadError as err:
                    _err(str(err))
                    failed += 1
                    continue
                except OSError as err:
                    where = f"cannot write {dst}: " if err.filename else ""
                    _err(f"{src}: {where}{_reason(err)}")
                    failed += 1
                    continue
                except (ValueError, RuntimeError, MemoryError) as err:
                    _err(f"{src}: {_reason(err)}")
                    failed += 1
                    continue
                h, w = res.size
                del res
                took = time.perf_counter() - t0
                seconds += took
                megapixels += h * w / 1e6
                done += 1
                if not interactive:
                    print(
                        f"flowmapsr upscale: [{current}/{len(todo)}] {src} -> {dst} "
                        f"({w}×{h}, estimated {_seconds(watch.estimate)}, took {took:.1f} s)",
                        file=sys.stderr,
                        flush=True,
                    )
        except KeyboardInterrupt:  # SIGINT, or SIGTERM (see _signals_as_interrupts)
            stopped = caught.get("signal", signal.SIGINT)
        finally:
            bar.close()
    total = time.perf_counter() - start
    rate = f"{seconds / megapixels:.3f} s per output megapixel" if megapixels else "no output"
    where = f"device {pipe.device}, {pipe.precision}" if pipe is not None else "model not loaded"
    also = f", {renamed} renamed (same output name)" if renamed else ""
    if over_ceiling:
        also += f", {over_ceiling} over the cost ceiling (--max-megapixels, --max-seconds)"
    if stopped is not None:
        left = len(todo) - done - (failed - failed_before)
        also += f", interrupted by {signal.Signals(stopped).name} ({left} not written)"
    print(
        f"flowmapsr upscale: {done} done, {skipped} skipped, {failed} failed{also} "
        f"in {total:.1f} s ({rate}, {where})",
        flush=True,
    )
    if stopped is not None:
        return 128 + int(stopped)
    return 0 if failed == 0 else 1
