"""The package's one image reader and writer: files as people have them ↔ :class:`Picture`.

Every part of flowmapsr decodes files here: the upscaler (CLI, web page, API), the training
datasets (:mod:`flowmapsr.data.datasets`, which want uint8 RGB), the metrics
(:mod:`flowmapsr.metrics.files`, which want float tensors) and training validation.

A :class:`Picture` holds colour pixels (RGB, or grey kept as one channel), an optional alpha
channel (upscaled separately, with bicubic), the ICC profile to carry to the output, and the
sample type: uint8, uint16 or float32. Pillow reads everything (EXIF orientation applied,
palette / CMYK / 1-bit / LA / YCbCr converted, CMYK through its ICC profile with LittleCMS when
it has one); 16-bit PNG and 16-bit RGB(A) TIFF pixels come from OpenCV, because Pillow reduces
them to 8 bits; float TIFFs with 3 or 4 channels, which Pillow cannot open, come from OpenCV too.

Rules for what users have:

- **Float input** (32-bit float TIFF) is nominal ``[0, 1]``: it is kept as float32, never
  quantised on the way in; values outside ``[0, 1]`` (and NaN/inf) are clipped for the model
  and :attr:`Picture.notes` gets one line naming the file and the actual range. Its output is a
  float32 TIFF (:func:`write_image` with ``fmt="tif"``); written as PNG it becomes 16 bits.
- **16-bit input** stays 16-bit in PNG and TIFF outputs (JPEG and WebP are 8-bit formats).
- **Multi-frame input** (animated GIF / PNG / WebP, multi-page TIFF) is refused with one line
  naming the file and its frame count, unless ``first_frame=True`` asks for frame 0 alone; frames
  are never dropped silently.

PNGs and TIFFs are written with OpenCV (8 and 16 bits, float TIFF; one copy less than Pillow
for huge images); the ICC profile goes into a PNG ``iCCP`` chunk inserted by hand (OpenCV cannot
write one; a PNG chunk is length + type + data + CRC-32). JPEG and WebP are written with Pillow.
Every write goes to a temporary file in the target folder and is renamed into place (atomic).
"""

from __future__ import annotations

import io
import math
import os
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps, TiffImagePlugin, UnidentifiedImageError

from flowmapsr.atomic import atomic_write

# Decompression-bomb guard: input pixels allowed by default (about an 8K × 6K photo).
DEFAULT_MAX_PIXELS = 50_000_000
# Training and evaluation sets hold big photos, not untrusted uploads: they keep Pillow's own
# limit (twice its warning threshold, ~179 MP) rather than the upscaler's.
LIBRARY_MAX_PIXELS = 2 * Image.MAX_IMAGE_PIXELS
FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp", "tif": ".tif"}
IMAGE_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".tga", ".ppm", ".pgm",
}  # fmt: skip
_PIL_LIMIT_LOCK = threading.Lock()
_ORIENTATION = 0x0112
_SAMPLE_FORMAT = 339  # TIFF tag: 1 unsigned int, 2 signed int, 3 IEEE float
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
_KIND = {"GIF": "animated GIF", "PNG": "animated PNG", "WEBP": "animated WebP"}


class ImageReadError(ValueError):
    """An input that cannot be used; ``str(err)`` is one line naming the file and the reason."""


@dataclass
class Picture:
    """Pixels ready for upscaling.

    color: ``(H, W, 3)`` RGB or ``(H, W)`` grey; uint8, uint16, or float32 in ``[0, 1]``.
    alpha: ``(H, W)`` with the same dtype, or None.
    icc: ICC profile bytes to embed in the output, or None.
    frames: frames in the file it was read from (> 1 only when frame 0 was asked for).
    notes: one-line remarks from reading it (e.g. float values clipped), for the user.
    """

    color: np.ndarray
    alpha: np.ndarray | None = None
    icc: bytes | None = None
    frames: int = 1
    notes: list[str] = field(default_factory=list)

    @property
    def grey(self) -> bool:
        return self.color.ndim == 2

    @property
    def bits(self) -> int:
        """8, 16, or 32 (float32)."""
        return {np.dtype(np.uint16): 16, np.dtype(np.float32): 32}.get(self.color.dtype, 8)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``."""
        return self.color.shape[0], self.color.shape[1]

    def rgb8(self) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB: grey repeated, 16-bit and float rounded to 8 bits, alpha
        dropped (what training data and the 8-bit metrics use)."""
        c = to_8bit(self.color)
        return np.repeat(c[:, :, None], 3, axis=2) if c.ndim == 2 else c

    def unit(self) -> np.ndarray:
        """``(H, W, 3)`` float32 RGB in ``[0, 1]`` at full precision (16-bit and float kept)."""
        scale = {8: 255.0, 16: 65535.0, 32: 1.0}[self.bits]
        c = self.color.astype(np.float32) / np.float32(scale)
        return np.repeat(c[:, :, None], 3, axis=2) if c.ndim == 2 else c


# -- reading ------------------------------------------------------------------------------------
def _png_bit_depth(path: Path) -> int | None:
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24]


def tiff_is_float(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TIFF whose first page holds IEEE float samples (header only).

    Cheap enough to call while planning a batch: reads the 8-byte header and the first IFD."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head[:4] not in _TIFF_MAGIC:
                return False
            ifd = TiffImagePlugin.ImageFileDirectory_v2(head)
            f.seek(ifd.next)
            ifd.load(f)
    except (OSError, ValueError, SyntaxError, struct.error):
        return False
    fmt = ifd.get(_SAMPLE_FORMAT)
    return 3 in (fmt if isinstance(fmt, tuple) else (fmt,))


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """EXIF orientation (1–8) on an ``(H, W, …)`` array, as ``ImageOps.exif_transpose`` does."""
    if orientation == 2:
        return a[:, ::-1]
    if orientation == 3:
        return a[::-1, ::-1]
    if orientation == 4:
        return a[::-1]
    if orientation == 5:
        return a.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(a, -1)
    if orientation == 7:
        return np.rot90(a, 2).swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(a, 1)
    return a


def _split_cv(a: np.ndarray, orientation: int = 1) -> tuple[np.ndarray, np.ndarray | None]:
    """An OpenCV array (grey, grey+alpha, BGR, BGRA) → RGB/grey colour and alpha, oriented."""
    alpha = None
    if a.ndim == 3 and a.shape[2] == 4:
        alpha, a = a[:, :, 3], cv2.cvtColor(a[:, :, :3], cv2.COLOR_BGR2RGB)
    elif a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(a, cv2.COLOR_BGR2RGB)
    elif a.ndim == 3 and a.shape[2] == 2:
        alpha, a = a[:, :, 1], a[:, :, 0]
    elif a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    a = np.ascontiguousarray(_apply_orientation(a, orientation))
    if alpha is not None:
        alpha = np.ascontiguousarray(_apply_orientation(alpha, orientation))
    return a, alpha


def _header_orientation(im: Image.Image) -> int:
    """EXIF orientation from an opened, undecoded image. Pillow's ``getexif`` on a PNG whose
    eXIf chunk is not ahead of the pixels decodes the whole image to look for it (a bomb then
    is decoded); such a late chunk is read as "no orientation" here instead."""
    if im.format == "PNG" and "exif" not in im.info:
        return 1
    return im.getexif().get(_ORIENTATION, 1)


def _tiff_16bit_colour(im: Image.Image) -> bool:
    """A TIFF whose colour samples are 16-bit (Pillow opens these as 8-bit RGB/RGBA)."""
    bits = getattr(im, "tag_v2", {}).get(258)
    bits = bits if isinstance(bits, tuple) else (bits,)
    return im.mode in ("RGB", "RGBA") and len(bits) > 1 and all(b == 16 for b in bits)


def _read_cv16(path: Path, orientation: int, icc: bytes | None, kind: str) -> Picture:
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)  # first page; orientation applied below
    if a is None or a.dtype != np.uint16:
        raise ImageReadError(f"{path}: cannot decode 16-bit {kind}")
    return Picture(*_split_cv(a, orientation), icc)


def _float_picture(path: Path, color: np.ndarray, alpha: np.ndarray | None, icc) -> Picture:
    """Float samples → a float32 :class:`Picture` in ``[0, 1]`` (the stated rule: float input is
    nominal [0, 1]; anything outside is clipped for the model, and a note gives the range)."""
    color = color.astype(np.float32, copy=False)
    notes = []
    parts = [color] if alpha is None else [color, alpha.astype(np.float32, copy=False)]
    bad = any(not np.isfinite(p).all() for p in parts)
    finite = [p[np.isfinite(p)] for p in parts]
    lo = min((float(p.min()) for p in finite if p.size), default=0.0)
    hi = max((float(p.max()) for p in finite if p.size), default=0.0)
    if bad or lo < 0.0 or hi > 1.0:
        extra = ", and NaN/inf (taken as 0 or the nearest end)" if bad else ""
        notes.append(
            f"{path}: float image with values in [{lo:.6g}, {hi:.6g}]{extra}; float input is "
            "taken as [0, 1], so values outside are clipped"
        )
        parts = [np.clip(np.nan_to_num(p, nan=0.0, posinf=1.0, neginf=0.0), 0, 1) for p in parts]
    color = np.ascontiguousarray(parts[0])
    alpha = np.ascontiguousarray(parts[1]) if len(parts) > 1 else None
    return Picture(color, alpha, icc, notes=notes)


def _read_cv_tiff(path: Path, max_pixels: int | None, first_frame: bool) -> Picture:
    """TIFFs Pillow cannot open (float with 3 or 4 channels) through OpenCV."""
    pages = cv2.imcount(str(path))
    if pages > 1 and not first_frame:
        raise ImageReadError(_frames_message(path, "multi-page TIFF", pages))
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise ImageReadError(f"{path}: not an image (or a format Pillow cannot read)")
    h, w = a.shape[:2]
    _check_size(path, w, h, max_pixels)
    color, alpha = _split_cv(a)
    if np.issubdtype(a.dtype, np.floating):
        pic = _float_picture(path, color, alpha, None)
    elif a.dtype in (np.uint8, np.uint16):
        pic = Picture(color, alpha)
    else:
        raise ImageReadError(f"{path}: unsupported TIFF sample type {a.dtype}")
    pic.frames = max(pages, 1)
    return pic


def _frames_message(path: Path, kind: str, n: int) -> str:
    return (
        f"{path}: {kind} with {n} frames; upscaling only the first would drop the others "
        "(--first-frame upscales frame 0 alone)"
    )


def _check_size(path: Path, w: int, h: int, max_pixels: int | None) -> None:
    if w < 1 or h < 1:
        raise ImageReadError(f"{path}: image has no pixels ({w}×{h})")
    if max_pixels is not None and w * h > max_pixels:
        raise ImageReadError(
            f"{path}: {w}×{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,} "
            "(a decompression-bomb guard; raise it with --max-pixels)"
        )


def picture_from_pil(im: Image.Image, path: str | os.PathLike = "image") -> Picture:
    """A loaded PIL image → :class:`Picture` (EXIF orientation applied, modes normalised).

    ``path`` names the image in notes (float values clipped)."""
    if im.getexif().get(_ORIENTATION, 1) != 1:
        im = ImageOps.exif_transpose(im)
    icc = im.info.get("icc_profile") or None
    mode = im.mode
    if mode == "CMYK":
        if icc:
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                im = ImageCms.profileToProfile(
                    im, src, ImageCms.createProfile("sRGB"), outputMode="RGB"
                )
            except (ImageCms.PyCMSError, OSError):
                im = im.convert("RGB")
        else:
            im = im.convert("RGB")
        return Picture(np.asarray(im), None, None)  # now sRGB: the CMYK profile no longer applies
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im)
        if a.dtype != np.uint16:
            a = np.clip(a, 0, 65535).astype(np.uint16)
        return Picture(np.ascontiguousarray(a), None, icc)
    if mode == "F":
        return _float_picture(Path(path), np.asarray(im, dtype=np.float32), None, icc)
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in im.info
        im = im.convert("RGBA" if has_alpha else "RGB")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "La":
        im = im.convert("LA")
    elif mode not in ("RGB", "RGBA", "L", "LA"):
        im = im.convert("RGBA" if "A" in mode or "a" in mode else "RGB")
    a = np.asarray(im)
    if im.mode in ("RGBA", "LA"):
        color = a[..., :-1] if im.mode == "RGBA" else a[..., 0]
        return Picture(np.ascontiguousarray(color), np.ascontiguousarray(a[..., -1]), icc)
    return Picture(np.ascontiguousarray(a), None, icc)


def _shrunk(im: Image.Image, max_side: int | None) -> Image.Image:
    """``im`` (orientation applied) shrunk with Lanczos so its longer side is ``max_side``."""
    if not max_side or max(im.size) <= max_side:
        return im
    f = max_side / max(im.size)
    size = (max(1, round(im.size[0] * f)), max(1, round(im.size[1] * f)))
    if im.mode in ("P", "PA", "1", "CMYK", "La", "I;16B", "I;16N"):
        im = im.convert("RGBA" if "A" in im.mode or "a" in im.mode else "RGB")
    return im.resize(size, Image.LANCZOS)


def frame_count(im: Image.Image) -> int:
    """Frames (animation) or pages (TIFF) in an opened PIL image; 1 for still images."""
    return int(getattr(im, "n_frames", 1) or 1)


def read_image(
    path: str | os.PathLike,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    *,
    first_frame: bool = False,
    max_side: int | None = None,
) -> Picture:
    """Read an image file as a :class:`Picture`; raises :class:`ImageReadError` (one line).

    ``max_pixels``: the header's size is checked against it before any pixel is decoded (None:
    no limit). ``first_frame``: a multi-frame file gives frame 0 instead of an error.
    ``max_side``: larger images are shrunk (aspect kept, Lanczos) so their longer side is
    ``max_side``; JPEGs are then decoded at a reduced DCT scale first (``Image.draft``), which
    makes reading a 20 MP photo several times cheaper (training data uses this).
    """
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            target = os.readlink(path)
            raise ImageReadError(f"{path}: broken symbolic link (its target {target} is missing)")
        raise ImageReadError(f"{path}: no such file")
    if not path.is_file():
        raise ImageReadError(f"{path}: not a regular file")
    if path.stat().st_size == 0:
        raise ImageReadError(f"{path}: empty file")
    try:
        # Our limit replaces Pillow's global one for this open; the size is checked from the
        # header before any pixel is decoded.
        with _PIL_LIMIT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                im = Image.open(path)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
        with im:
            w, h = im.size
            _check_size(path, w, h, max_pixels)
            frames = frame_count(im)
            if frames > 1 and not first_frame:
                kind = "multi-page TIFF" if im.format == "TIFF" else _KIND.get(im.format, "")
                raise ImageReadError(_frames_message(path, kind or f"{im.format} file", frames))
            deep = (im.format == "PNG" and _png_bit_depth(path) == 16) or (
                im.format == "TIFF" and _tiff_16bit_colour(im)
            )
            if deep and not max_side:
                orientation = _header_orientation(im)
                icc = im.info.get("icc_profile") or None
                pic = _read_cv16(path, orientation, icc, im.format)
            else:
                if max_side and max(im.size) > max_side:
                    f = max_side / max(im.size)
                    im.draft(im.mode, (math.ceil(w * f), math.ceil(h * f)))
                im.load()
                if max_side:
                    im = _shrunk(ImageOps.exif_transpose(im), max_side)
                pic = picture_from_pil(im, path)
            pic.frames = frames
            return pic
    except ImageReadError:
        raise
    except PermissionError:
        raise ImageReadError(f"{path}: permission denied (the file cannot be opened)") from None
    except UnidentifiedImageError:
        with open(path, "rb") as f:
            is_tiff = f.read(4) in _TIFF_MAGIC
        if is_tiff:  # float RGB(A) TIFFs: Pillow has no mode for them, OpenCV reads them
            return _read_cv_tiff(path, max_pixels, first_frame)
        raise ImageReadError(f"{path}: not an image (or a format Pillow cannot read)") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error, cv2.error) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ImageReadError(f"{path}: cannot read image ({reason})") from None


def _tiff_header_size(path: Path) -> tuple[int, int] | None:
    """``(H, W)`` of a TIFF's first page from its IFD (tags 257, 256), or None."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if head[:4] not in _TIFF_MAGIC:
                return None
            ifd = TiffImagePlugin.ImageFileDirectory_v2(head)
            f.seek(ifd.next)
            ifd.load(f)
    except (OSError, ValueError, SyntaxError, struct.error):
        return None
    h, w = ifd.get(257), ifd.get(256)
    return (int(h), int(w)) if h and w else None


def probe_size(path: str | os.PathLike, oriented: bool = False) -> tuple[int, int]:
    """``(H, W)`` from the file's header, without decoding; raises :class:`ImageReadError`.

    ``oriented``: the size after the EXIF orientation (a 90° turn swaps H and W), as
    :func:`read_image` returns it."""
    path = Path(path)
    try:
        with warnings.catch_warnings():  # the callers judge the size; no Python warning lines
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            w, h = im.size
            if oriented and _header_orientation(im) in (5, 6, 7, 8):
                w, h = h, w
    except UnidentifiedImageError:
        size = _tiff_header_size(path) if tiff_is_float(path) else None
        if size is not None:  # float RGB(A) TIFFs: Pillow cannot open them, their IFD says
            return size
        raise ImageReadError(f"{path}: not an image (or a format Pillow cannot read)") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"{path}: cannot read image ({err})") from None
    if w < 1 or h < 1:
        raise ImageReadError(f"{path}: empty image {w}x{h}")
    return h, w


# -- writing ------------------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _iccp_chunk(icc: bytes) -> bytes:
    # iCCP: profile name (1–79 bytes), NUL, compression method 0, zlib-compressed profile.
    return _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))


def to_8bit(a: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float ``[0, 1]`` samples → uint8 (rounded)."""
    if a.dtype == np.uint8:
        return a
    if np.issubdtype(a.dtype, np.floating):
        return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def to_16bit(a: np.ndarray) -> np.ndarray:
    """uint8 / uint16 / float ``[0, 1]`` samples → uint16 (floats rounded; uint8 × 257)."""
    if a.dtype == np.uint16:
        return a
    if np.issubdtype(a.dtype, np.floating):
        return (np.clip(a, 0.0, 1.0) * 65535.0 + 0.5).astype(np.uint16)
    return a.astype(np.uint16) * 257


def _cv_layout(pic: Picture, color: np.ndarray, alpha, consume: bool) -> np.ndarray:
    """Colour (+ alpha) in OpenCV's channel order (grey, grey+alpha, BGR or BGRA)."""
    if pic.grey:
        return color if alpha is None else np.dstack([color, alpha])
    code = cv2.COLOR_RGB2BGR if alpha is None else cv2.COLOR_RGBA2BGRA
    arr = color if alpha is None else np.dstack([color, alpha])
    owned = consume or arr is not color  # a fresh dstack may be reordered in place
    return cv2.cvtColor(arr, code, dst=arr) if owned else cv2.cvtColor(arr, code)


def write_image(
    path: str | os.PathLike,
    pic: Picture,
    fmt: str = "png",
    quality: int = 95,
    consume: bool = False,
) -> Path:
    """Write ``pic`` atomically as PNG (8/16 bits, alpha, ICC), TIFF (8/16 bits or float32,
    alpha; no ICC), JPEG (8 bits, no alpha) or WebP (8 bits). Grey + alpha stays LA at 8 bits
    (Pillow); at 16 bits or float it is written as RGBA (no such LA mode in OpenCV or Pillow).

    A float picture keeps float32 only in TIFF; PNG stores it as 16 bits, JPEG/WebP as 8.
    ``consume=True`` lets the PNG/TIFF writer reorder ``pic.color`` to BGR in place instead of
    copying it (saves one image-sized buffer on huge outputs; ``pic`` is garbage afterwards).
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format '{fmt}' (choose from {', '.join(FORMATS)})")
    if fmt in ("png", "tif") and pic.grey and pic.alpha is not None:
        # OpenCV encodes no grey + alpha (2 channels). Pillow writes 8-bit LA; it has no 16-bit
        # or float LA mode, so those become RGBA with the grey repeated: the depth is kept.
        if pic.bits == 8:
            im = picture_to_pil(pic)
            kwargs = {"icc_profile": pic.icc} if pic.icc and fmt == "png" else {}
            pil_format = "PNG" if fmt == "png" else "TIFF"
            atomic_write(path, lambda f: im.save(f, format=pil_format, **kwargs))
            return path
        pic = Picture(np.repeat(pic.color[:, :, None], 3, axis=2), pic.alpha, pic.icc)
        consume = True  # a fresh array
    if fmt in ("png", "tif"):
        color, alpha = pic.color, pic.alpha
        if fmt == "png" and pic.bits == 32:
            color, alpha = to_16bit(color), None if alpha is None else to_16bit(alpha)
            consume = True  # fresh arrays
        arr = _cv_layout(pic, color, alpha, consume)
        try:
            ok, buf = cv2.imencode(FORMATS[fmt], arr)
        except cv2.error as err:  # one line for the user, not OpenCV's assertion text
            raise ValueError(f"cannot encode a {arr.shape} {arr.dtype} image as {fmt}") from err
        if not ok:
            raise OSError(f"{path}: OpenCV could not encode the {fmt.upper()}")
        data = memoryview(buf.reshape(-1))
        del arr

        def write(f):
            if pic.icc and fmt == "png":
                end_of_ihdr = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
                f.write(data[:end_of_ihdr])
                f.write(_iccp_chunk(pic.icc))
                f.write(data[end_of_ihdr:])
            else:
                f.write(data)

        atomic_write(path, write)
        return path
    im = picture_to_pil(pic, eight_bit=True)
    if fmt == "jpg" and im.mode not in ("RGB", "L"):
        im = im.convert("RGB" if im.mode == "RGBA" else "L")  # JPEG has no alpha channel
    kwargs = {"quality": int(quality)}
    if pic.icc:
        kwargs["icc_profile"] = pic.icc
    pil_format = "JPEG" if fmt == "jpg" else "WEBP"
    atomic_write(path, lambda f: im.save(f, format=pil_format, **kwargs))
    return path


def picture_to_pil(pic: Picture, eight_bit: bool = False) -> Image.Image:
    """:class:`Picture` → PIL image (RGB/RGBA/L/LA; 16-bit grey without alpha stays ``I;16``,
    float grey without alpha stays ``F``).

    Pillow has no 16-bit or float RGB mode, so those pictures come back as 8-bit.
    """
    if pic.grey and pic.alpha is None and pic.bits == 16 and not eight_bit:
        im = Image.fromarray(pic.color)  # mode I;16
    elif pic.grey and pic.alpha is None and pic.bits == 32 and not eight_bit:
        im = Image.fromarray(pic.color)  # mode F
    elif pic.alpha is None:
        im = Image.fromarray(to_8bit(pic.color))
    else:
        im = Image.fromarray(np.dstack([to_8bit(pic.color), to_8bit(pic.alpha)]))
    if pic.icc:
        im.info["icc_profile"] = pic.icc
    return im
