"""A hostile-input corpus for ``flowmapsr upscale``, built by code (no binary files in git).

Every case is a small folder of files as users have them — broken, odd, huge-by-header, animated,
float, 16-bit, colliding names — and the flags it runs with. :func:`run_corpus` builds every case
and runs the CLI on it in-process (``flowmapsr upscale INPUTS -o OUT --model M --scale 2``, with
a random-weight model unless one is given), recording the exit code, what it printed and what it
wrote: each output's mode, size, bit depth and frame count, read back from the file.

``docs/hostile-input.md`` holds the outcome of every case as a table; the default test run
(``tests/testing/test_hostile_corpus.py``) checks it row by row against what happens, and that
the table and :data:`CASES` name the same cases. Regenerate it after a deliberate change with::

    python -m flowmapsr.testing.hostile --write docs/hostile-input.md

A case that cannot run here (``unreadable`` and ``output-folder-read-only`` as root, for whom
file modes do not hold) keeps the row the document already has; ``--check PATH`` compares
without writing.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import hashlib
import io
import os
import struct
import sys
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

SCALE = 2  # every case runs at x2: tiny inputs, tiny outputs, a fast corpus
NONE = "—"  # the table's word for "no message" and the start of "no output"
BEGIN, END = "<!-- hostile-table:begin -->", "<!-- hostile-table:end -->"


# -- building inputs ----------------------------------------------------------------------------
def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))  # the same bytes on every run


def _rgb(name: str, h: int = 12, w: int = 10, channels: int = 3) -> np.ndarray:
    return _rng(name).integers(0, 256, (h, w, channels), dtype=np.uint8)


def _png(path: Path, h: int = 12, w: int = 10, channels: int = 3) -> Path:
    Image.fromarray(_rgb(path.name, h, w, channels)).save(path)
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_declaring(path: Path, w: int, h: int) -> Path:
    """A tiny PNG whose header declares ``w × h`` RGB (what a bomb or a sparse image looks like
    before decoding): signature, IHDR, one short IDAT, IEND."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    body = (
        _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + _chunk(b"IEND", b"")
    )
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def _corrupt_idat(path: Path) -> Path:
    """A 32×32 PNG whose IDAT has 64 bytes of its deflate stream overwritten (CRC fixed up, so
    only the decompressor can notice)."""
    _png(path, 32, 32)
    data = bytearray(path.read_bytes())
    pos = 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = bytes(data[pos + 4 : pos + 8])
        if kind == b"IDAT":
            start = pos + 8 + length // 2
            data[start : start + 64] = b"\xff" * 64
            crc = zlib.crc32(bytes(data[pos + 4 : pos + 8 + length]))
            data[pos + 8 + length : pos + 12 + length] = struct.pack(">I", crc)
            break
        pos += 12 + length
    path.write_bytes(bytes(data))
    return path


def _frames(path: Path, fmt: str, n: int = 2, **kwargs) -> Path:
    colours = ("red", "green", "blue", "white")
    frames = [Image.new("RGB", (10, 12), colours[i % 4]) for i in range(n)]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], **kwargs)
    return path


def _float_tiff(path: Path, lo: float = 0.0, hi: float = 1.0, grey: bool = False) -> Path:
    rng = _rng(path.name)
    shape = (12, 10) if grey else (12, 10, 3)
    a = (lo + (hi - lo) * rng.random(shape)).astype(np.float32)
    if grey:
        Image.fromarray(a, mode="F").save(path)
    else:  # Pillow has no float RGB mode; OpenCV writes it (BGR order)
        cv2.imwrite(str(path), np.ascontiguousarray(a[:, :, ::-1]))
    return path


def _exif_rotated(path: Path) -> Path:
    """A JPEG stored 16 wide × 10 high with EXIF orientation 6 (shown turned: 10 × 16)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(_rgb(path.name, 10, 16)).save(path, exif=exif, quality=95)
    return path


@dataclass
class Setup:
    """What a case runs on: input arguments, the output folder (None: its own), extra flags."""

    inputs: list[str]
    out: Path | None = None


@dataclass
class Case:
    """One hostile input: ``build(folder) → Setup``; ``flags`` are added to the command line.

    ``message``: a stable substring of what the run prints to stderr (None: it prints no error
    or note). ``seconds_per_mp``: a cost figure injected into the run's cost meter instead of
    timing (per output megapixel per NFE). ``skip``: returns why the case cannot run here, or
    None.
    """

    name: str
    what: str
    build: Callable[[Path], Setup]
    message: str | None = None
    flags: tuple[str, ...] = ()
    seconds_per_mp: float | None = None
    skip: Callable[[], str | None] = lambda: None


def _one(make: Callable[[Path], Path]) -> Callable[[Path], Setup]:
    return lambda d: Setup([str(make(d))])


def _root_skip() -> str | None:
    """Why ``chmod 000`` cannot make a file unreadable here (root, or CAP_DAC_OVERRIDE), or None."""
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "probe"
        probe.write_bytes(b"x")
        probe.chmod(0)
        try:
            probe.read_bytes()
        except PermissionError:
            return None
    return "running as root (or with CAP_DAC_OVERRIDE): file modes do not stop this process"


def _unreadable(d: Path) -> Setup:
    p = _png(d / "locked.png")
    p.chmod(0)
    return Setup([str(p)])


def _broken_link(d: Path) -> Setup:
    (d / "link.png").symlink_to("gone.png")
    return Setup([str(d / "link.png")])


def _same_stem(d: Path) -> Setup:
    Image.fromarray(_rgb("photo.jpg")).save(d / "photo.jpg", quality=95)
    return Setup([str(d / "photo.jpg"), str(_png(d / "photo.png"))])


def _same_stem_first_bad(d: Path) -> Setup:
    (d / "photo.jpg").write_text("not a JPEG at all")
    return Setup([str(d / "photo.jpg"), str(_png(d / "photo.png"))])


def _output_is_input(d: Path) -> Setup:
    return Setup([str(_png(d / "a.png"))], out=d)


def _other_input_is_output(d: Path) -> Setup:
    _png(d / "a.png")
    Image.open(d / "a.png").save(d / "a.webp", lossless=True)
    return Setup([str(d / "a.webp"), str(d / "a.png")], out=d)


def _listed_twice(d: Path) -> Setup:
    p = _png(d / "a.png")
    return Setup([str(p), str(p)])


def _out_is_a_file(d: Path) -> Setup:
    (d / "out").write_text("a file where the output folder should go")
    return Setup([str(_png(d / "a.png"))], out=d / "out")


def _readonly_out(d: Path) -> Setup:
    (d / "out").mkdir()
    (d / "out").chmod(0o555)
    return Setup([str(_png(d / "a.png"))], out=d / "out")


def _hard_link_collision(d: Path) -> Setup:
    """``out/a.png`` is a hard link to the input ``in/a.png``; ``other/a.jpg`` maps there too."""
    for sub in ("in", "out", "other"):
        (d / sub).mkdir()
    _png(d / "in" / "a.png")
    os.link(d / "in" / "a.png", d / "out" / "a.png")
    Image.fromarray(_rgb("a.jpg")).save(d / "other" / "a.jpg", quality=95)
    return Setup([str(d / "in" / "a.png"), str(d / "other" / "a.jpg")], out=d / "out")


def _empty_folder(d: Path) -> Setup:
    (d / "photos").mkdir()
    (d / "photos" / "readme.txt").write_text("no images here")
    return Setup([str(d / "photos")])


def _write(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        (d / name).write_bytes(data)
        return d / name

    return make


def _truncated(d: Path) -> Path:
    p = _png(d / "cut.png", 64, 64)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def _mode(name: str, mode: str, **save) -> Callable[[Path], Path]:
    """An 8-bit RGB(A) image converted to Pillow ``mode`` and saved as ``name``."""

    def make(d: Path) -> Path:
        channels = 4 if mode in ("RGBA", "LA", "PA") else 3
        im = Image.fromarray(_rgb(name, channels=channels))
        im = im.convert("RGBA").convert("LA") if mode == "LA" else im.convert(mode)
        im.save(d / name, **save)
        return d / name

    return make


def _palette_transparent(d: Path) -> Path:
    im = Image.fromarray(_rgb("pt.png")).convert("P", palette=Image.ADAPTIVE, colors=16)
    im.save(d / "pt.png", transparency=0)
    return d / "pt.png"


def _grey16(d: Path) -> Path:
    a = _rng("g16").integers(0, 65536, (12, 10), dtype=np.uint16)
    Image.fromarray(a).save(d / "g16.png")  # mode I;16: a 16-bit grey PNG
    return d / "g16.png"


def _rgb16(name: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        a = _rng(name).integers(0, 65536, (12, 10, 3), dtype=np.uint16)
        cv2.imwrite(str(d / name), a)  # Pillow cannot write 16-bit RGB PNGs
        return d / name

    return make


CASES: list[Case] = [
    # unreadable files: one line naming the file, exit 1, nothing written
    Case("empty", "0-byte `x.png`", _one(_write("x.png", b"")), "empty file"),
    Case("truncated", "a 64×64 PNG cut in half", _one(_truncated), "cannot read image"),
    Case("text-as-png", "a text file named `.png`", _one(_write("t.png", b"hello\n")),
         "not an image"),
    Case("corrupt-idat", "a PNG whose deflate stream is overwritten (CRC valid)",
         _one(lambda d: _corrupt_idat(d / "bad.png")), "cannot read image"),
    Case("bomb-40000", "a PNG of under 100 bytes declaring 40000×40000",
         _one(lambda d: _png_declaring(d / "bomb.png", 40000, 40000)),
         "decompression-bomb guard"),
    Case("bomb-10000", "a PNG of under 100 bytes declaring 10000×10000 (between the pixel guard "
         "and Pillow's own limit)", _one(lambda d: _png_declaring(d / "bomb.png", 10000, 10000)),
         "decompression-bomb guard"),
    Case("missing", "a name that does not exist", lambda d: Setup([str(d / "nope.png")]),
         "no such file"),
    Case("broken-symlink", "a symlink to a missing file", _broken_link, "broken symbolic link"),
    Case("unreadable", "a PNG with mode 000 (skipped as root)", _unreadable, "permission denied",
         skip=_root_skip),
    Case("glob-no-match", "a glob that matches nothing",
         lambda d: Setup([str(d / "nothing*.png")]), "no file matches"),
    Case("folder-without-images", "a folder holding only a `.txt`", _empty_folder,
         "folder holds no image files"),
    # bounded cost: refused from the header, before a pixel is decoded
    Case("declared-7000", "a PNG of under 100 bytes declaring 7000×7000 (49 MP: under the "
         "pixel guard), at x4",
         _one(lambda d: _png_declaring(d / "huge.png", 7000, 7000)),
         "exceeds the limit of 500 MP", flags=("--scale", "4")),
    Case("over-max-megapixels", "64×64 PNG, `--max-megapixels 0.01`",
         _one(lambda d: _png(d / "a.png", 64, 64)), "--max-megapixels",
         flags=("--max-megapixels", "0.01")),
    Case("over-max-seconds", "64×64 PNG, `--max-seconds 10`, cost injected: 1000 s/MP",
         _one(lambda d: _png(d / "a.png", 64, 64)), "estimated 16 s",
         flags=("--max-seconds", "10"), seconds_per_mp=1000.0),
    # what users have: kept as it is
    Case("rgba", "8-bit RGBA PNG", _one(_mode("a.png", "RGBA"))),
    Case("grey-alpha", "8-bit grey + alpha PNG", _one(_mode("la.png", "LA"))),
    Case("bilevel", "1-bit PNG", _one(_mode("b.png", "1"))),
    Case("palette", "palette PNG", _one(_mode("p.png", "P"))),
    Case("palette-transparent", "palette PNG with a transparent index",
         _one(_palette_transparent)),
    Case("cmyk-jpeg", "CMYK JPEG", _one(_mode("c.jpg", "CMYK", quality=95))),
    Case("exif-rotation", "JPEG stored 16×10, EXIF orientation 6",
         _one(lambda d: _exif_rotated(d / "r.jpg"))),
    Case("unicode-name", "`фото 猫.png`", _one(lambda d: _png(d / "фото 猫.png"))),
    Case("grey-16bit", "16-bit grey PNG", _one(_grey16)),
    Case("rgb-16bit", "16-bit RGB PNG", _one(_rgb16("c16.png"))),
    Case("rgb-16bit-jpg", "16-bit RGB PNG, `--format jpg`", _one(_rgb16("c16.png")),
         "16-bit input written as 8-bit JPG", flags=("--format", "jpg")),
    Case("rgb-16bit-tiff", "16-bit RGB TIFF, `--format tif`", _one(_rgb16("c16.tif")),
         flags=("--format", "tif")),
    Case("rgb-16bit-tif", "16-bit RGB PNG, `--format tif`", _one(_rgb16("c16.png")),
         flags=("--format", "tif")),
    Case("float-tiff-png", "float32 RGB TIFF in [0, 1]", _one(lambda d: _float_tiff(d / "f.tif")),
         "float32 input written as 16-bit PNG"),
    Case("float-tiff", "float32 RGB TIFF in [0, 1], `--format tif`",
         _one(lambda d: _float_tiff(d / "f.tif")), flags=("--format", "tif")),
    Case("float-tiff-grey", "float32 grey TIFF in [0, 1], `--format tif`",
         _one(lambda d: _float_tiff(d / "g.tif", grey=True)), flags=("--format", "tif")),
    Case("float-tiff-above-1", "float32 RGB TIFF in [0, 6], `--format tif`",
         _one(lambda d: _float_tiff(d / "f.tif", 0.0, 6.0)), "values outside are clipped",
         flags=("--format", "tif")),
    # several frames: refused in one line, or frame 0 when asked for
    Case("animated-gif", "2-frame GIF", _one(lambda d: _frames(d / "a.gif", "GIF", duration=50)),
         "animated GIF with 2 frames"),
    Case("animated-gif-first-frame", "2-frame GIF, `--first-frame`",
         _one(lambda d: _frames(d / "a.gif", "GIF", duration=50)), "frame 0 only",
         flags=("--first-frame",)),
    Case("animated-png", "2-frame APNG", _one(lambda d: _frames(d / "a.png", "PNG")),
         "animated PNG with 2 frames"),
    Case("animated-webp", "2-frame WebP", _one(lambda d: _frames(d / "a.webp", "WEBP",
         lossless=True)), "animated WebP with 2 frames"),
    Case("multi-page-tiff", "2-page TIFF", _one(lambda d: _frames(d / "a.tif", "TIFF")),
         "multi-page TIFF with 2 frames"),
    # names: nothing lost, no input written
    Case("same-stem", "`photo.jpg` + `photo.png`", _same_stem, "another input also maps to"),
    Case("same-stem-first-bad", "`photo.jpg` (text) + `photo.png`", _same_stem_first_bad,
         "not an image"),
    Case("output-is-input", "`a.png -o` its own folder, `--overwrite`", _output_is_input,
         "refusing to overwrite an input", flags=("--overwrite",)),
    Case("other-input-is-output", "`a.webp` + `a.png -o` their folder, `--overwrite`",
         _other_input_is_output, "written as", flags=("--overwrite",)),
    Case("listed-twice", "`a.png a.png`", _listed_twice, "listed more than once"),
    Case("output-folder-is-a-file", "`-o` names a file", _out_is_a_file,
         "exists and is not a folder"),
    Case("output-folder-read-only", "`-o` names a mode-555 folder (skipped as root)",
         _readonly_out, "is not writable", skip=_root_skip),
    Case("hard-link-collision", "`in/a.png` + `other/a.jpg -o out`, `out/a.png` a hard link to "
         "the first, `--overwrite`", _hard_link_collision, "written as", flags=("--overwrite",)),
    # sizes and flags at the edges
    Case("one-pixel", "a 1×1 PNG", _one(lambda d: _png(d / "dot.png", 1, 1))),
    Case("thin-strip", "a 1×300 PNG, `--tile 16`", _one(lambda d: _png(d / "line.png", 1, 300)),
         flags=("--tile", "16", "--overlap", "4")),
    Case("scale-inf", "8-bit PNG, `--scale inf`", _one(lambda d: _png(d / "a.png")),
         "argument --scale: must be a number in 1–16, got 'inf'", flags=("--scale", "inf")),
    Case("tile-1", "8-bit PNG, `--tile 1`", _one(lambda d: _png(d / "a.png")),
         "argument --tile: must be an integer in 16–65536", flags=("--tile", "1")),
]  # fmt: skip


# -- running ------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What one case did: exit code, stderr, outputs (``describe_output`` lines, sorted), the
    inputs whose bytes changed, or ``skipped`` (why it did not run)."""

    exit: int | None = None
    stderr: str = ""
    outputs: list[str] = field(default_factory=list)
    changed_inputs: list[str] = field(default_factory=list)
    skipped: str | None = None


def describe_output(path: Path, name: str) -> str:
    """``name: MODE W×H, DEPTH, N frame(s)`` read back from the file: samples and depth from
    OpenCV (Pillow reduces 16-bit colour to 8 bits and opens no float RGB), the mode from
    Pillow for 8-bit files (OpenCV expands grey + alpha to BGRA), frames from Pillow or OpenCV.
    """
    a = cv2.imdecode(np.fromfile(path, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None:
        return f"`{name}`: unreadable"
    channels = 1 if a.ndim == 2 else a.shape[2]
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[channels]
    depth = {np.dtype(np.uint8): "8-bit", np.dtype(np.uint16): "16-bit"}.get(a.dtype, str(a.dtype))
    try:
        with Image.open(path) as im:
            frames = int(getattr(im, "n_frames", 1) or 1)
            if a.dtype == np.uint8 and im.mode in ("L", "LA", "RGB", "RGBA"):
                mode = im.mode
    except OSError:
        frames = max(cv2.imcount(str(path)), 1)
    h, w = a.shape[:2]
    return f"`{name}`: {mode} {w}×{h}, {depth}, {frames} frame{'s' if frames > 1 else ''}"


def _files(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): p for p in folder.rglob("*") if p.is_file()}


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def make_model(folder: Path) -> Path:
    """A random-weight small pipeline saved in ``folder`` (what the corpus runs with)."""
    from flowmapsr.inference.random_model import random_pipeline

    pipe = random_pipeline({"type": "small", "channels": 16, "blocks": 2}, seed=7)
    return pipe.save_pretrained(folder)


def run_case(case: Case, root: Path, model: Path) -> Outcome:
    """Build ``case`` under ``root/<name>`` and run ``flowmapsr upscale`` on it in-process."""
    why = case.skip()
    if why:
        return Outcome(skipped=why)
    from flowmapsr.cli import main as cli
    from flowmapsr.inference import cost

    folder = root / case.name
    folder.mkdir(parents=True)
    setup = case.build(folder)
    out = setup.out if setup.out is not None else root / f"{case.name}.out"
    inputs = [p for p in _files(folder).values() if not p.is_symlink()]
    before = {p: _digest(p) for p in inputs}
    existing = set(_files(out))
    argv = ["upscale", *setup.inputs, "-o", str(out), "--model", str(model)]
    argv += ["--scale", str(SCALE), *case.flags]
    err, sink = io.StringIO(), io.StringIO()
    meter = cost.CostMeter
    if case.seconds_per_mp is not None:
        cost.CostMeter = functools.partial(meter, case.seconds_per_mp)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(sink):
            try:
                code = cli.main(argv)
            except SystemExit as stop:  # argparse errors
                code = stop.code if isinstance(stop.code, int) else 2
    finally:
        cost.CostMeter = meter
    outputs = sorted(
        describe_output(p, name) for name, p in _files(out).items() if name not in existing
    )
    changed = [str(p.relative_to(folder)) for p in inputs if _digest(p) != before[p]]
    return Outcome(code, err.getvalue(), outputs, changed)


def run_corpus(root: str | os.PathLike, model: str | os.PathLike | None = None) -> dict:
    """Every case of :data:`CASES` built and run under ``root``: ``{name: Outcome}``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    model = Path(model) if model is not None else make_model(root / "_model")
    return {case.name: run_case(case, root / "cases", model) for case in CASES}


# -- the table ----------------------------------------------------------------------------------
@dataclass
class Row:
    case: str
    input: str
    flags: str
    exit: str
    message: str
    output: str


COLUMNS = ("case", "input", "flags", "exit", "message", "output")


def _problem_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " error: " in line or " note: " in line]


def row_for(case: Case, outcome: Outcome) -> Row:
    """The table row of an outcome; ``ValueError`` when the case's message did not appear."""
    if case.message is None and _problem_lines(outcome.stderr):
        raise ValueError(f"{case.name}: expected no message, got {_problem_lines(outcome.stderr)}")
    if case.message is not None and case.message not in outcome.stderr:
        raise ValueError(f"{case.name}: '{case.message}' not in: {outcome.stderr.strip()!r}")
    return Row(
        case.name,
        case.what,
        f"`{' '.join(case.flags)}`" if case.flags else NONE,
        str(outcome.exit),
        NONE if case.message is None else f"`{case.message}`",
        "<br>".join(outcome.outputs) or "no output",
    )


def render_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for r in rows:
        cells = [r.case, r.input, r.flags, r.exit, r.message, r.output]
        if any("|" in c for c in cells):
            raise ValueError(f"{r.case}: a cell holds '|': {cells}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_table(text: str) -> dict[str, Row]:
    """The rows between the document's table markers, by case name."""
    if BEGIN not in text or END not in text:
        raise ValueError(f"no table between {BEGIN} and {END}")
    body = text.split(BEGIN, 1)[1].split(END, 1)[0]
    rows: dict[str, Row] = {}
    for line in body.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != len(COLUMNS):
            raise ValueError(f"table row with {len(cells)} cells, not {len(COLUMNS)}: {line}")
        if cells[0] in rows:
            raise ValueError(f"case '{cells[0]}' is in the table twice")
        rows[cells[0]] = Row(*cells)
    return rows


def _unquote(cell: str) -> str:
    return cell[1:-1] if len(cell) > 1 and cell[0] == cell[-1] == "`" else cell


def check_row(row: Row, outcome: Outcome) -> list[str]:
    """How ``outcome`` differs from what the documented ``row`` says (empty: it matches)."""
    problems = []
    if row.exit != str(outcome.exit):
        problems.append(f"exit code {outcome.exit}, documented {row.exit}")
    if row.message == NONE:
        if _problem_lines(outcome.stderr):
            problems.append(f"printed {_problem_lines(outcome.stderr)}, documented no message")
    elif _unquote(row.message) not in outcome.stderr:
        problems.append(f"'{_unquote(row.message)}' not in stderr: {outcome.stderr.strip()!r}")
    got = "<br>".join(outcome.outputs) or "no output"
    if row.output != got:
        problems.append(f"output {got!r}, documented {row.output!r}")
    if "Traceback" in outcome.stderr:
        problems.append("printed a traceback")
    if "Warning:" in outcome.stderr:
        problems.append("printed a Python warning")
    if outcome.changed_inputs:
        problems.append(f"changed inputs {outcome.changed_inputs}")
    return problems


HEADER = """# Hostile input: what `flowmapsr upscale` does with it

Each row is one case of the corpus in `src/flowmapsr/testing/hostile.py`, built by code (no
binary files in git) and run as `flowmapsr upscale INPUTS -o OUT --model M --scale 2 FLAGS`
with a random-weight model. **The default test run checks this table**
(`tests/testing/test_hostile_corpus.py`): every row against what the CLI does (the exit code;
the message, a stable substring of stderr, or "—" for no error or note line; the outputs read
back from disk), that no input file changed, that no traceback or Python warning was printed,
and that the table and the corpus name the same cases. After a deliberate change, regenerate it:

    python -m flowmapsr.testing.hostile --write docs/hostile-input.md

Exit codes: 0 every input done (or skipped), 1 some input refused or failed (the others still
run), 2 the run could not start. Output: each file written, as `name`: mode, width×height,
samples, frames. `unreadable` and `output-folder-read-only` need file modes to hold, which they
do not for root: there the test skips them and `--write` keeps their rows. To run them as root,
drop the two capabilities that bypass file modes:

    setpriv --inh-caps=-dac_override,-dac_read_search \\
        --bounding-set=-dac_override,-dac_read_search python -m pytest tests/testing
"""


def render_document(rows: list[Row]) -> str:
    return f"{HEADER}\n{BEGIN}\n{render_table(rows)}\n{END}\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m flowmapsr.testing.hostile",
        description="Build and run the hostile-input corpus; write or check its docs table.",
    )
    group = ap.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="PATH", help="(re)write the document at PATH")
    group.add_argument("--check", metavar="PATH", help="compare the document at PATH, exit 1")
    args = ap.parse_args(argv)
    path = Path(args.write or args.check)
    old = parse_table(path.read_text(encoding="utf-8")) if path.exists() else {}
    with tempfile.TemporaryDirectory(prefix="flowmapsr-hostile-") as tmp:
        outcomes = run_corpus(tmp)
    if args.check:
        problems = [f"{n}: not in the table" for n in outcomes if n not in old]
        problems += [f"{n}: in the table, not in the corpus" for n in old if n not in outcomes]
        for name, outcome in outcomes.items():
            if name in old and outcome.skipped is None:
                problems += [f"{name}: {p}" for p in check_row(old[name], outcome)]
        for line in problems:
            print(line, file=sys.stderr)
        return 1 if problems else 0
    rows = []
    for case in CASES:
        outcome = outcomes[case.name]
        if outcome.skipped is not None:
            if case.name not in old:
                print(f"{case.name}: {outcome.skipped}; no row to keep in {path}", file=sys.stderr)
                return 1
            rows.append(old[case.name])
            print(f"{case.name}: {outcome.skipped}; its row is kept", file=sys.stderr)
            continue
        rows.append(row_for(case, outcome))
    text = render_document(rows)
    from flowmapsr.atomic import atomic_write_bytes

    atomic_write_bytes(path, text.encode("utf-8"))
    print(f"wrote {path} ({len(rows)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
