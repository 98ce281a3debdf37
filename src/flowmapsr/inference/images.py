"""Reading and writing images as people have them, for the upscaler.

A :class:`Picture` is what the upscaler works on: colour pixels (RGB, or grey kept as one
channel), an optional alpha channel (upscaled separately, with bicubic), the bit depth (8 or 16)
and the ICC profile to carry to the output. Pillow reads everything (EXIF orientation applied,
palette / CMYK / 1-bit / LA / YCbCr converted, CMYK through its ICC profile with LittleCMS when it
has one); 16-bit PNG pixels come from OpenCV, because Pillow reduces 16-bit RGB PNGs to 8 bits.
PNGs are written with OpenCV (8 and 16 bits, one copy less than Pillow for huge images); the
ICC profile goes into an ``iCCP`` chunk inserted by hand (OpenCV cannot write one; a PNG chunk is
length + type + data + CRC-32). JPEG and WebP are written with Pillow. Every write goes to a
temporary file in the target folder and is renamed into place (atomic).
"""

from __future__ import annotations

import io
import os
import struct
import threading
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from flowmapsr.atomic import atomic_write

# Decompression-bomb guard: input pixels allowed by default (about an 8K × 6K photo).
DEFAULT_MAX_PIXELS = 50_000_000
FORMATS = {"png": ".png", "jpg": ".jpg", "webp": ".webp"}
IMAGE_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".tga", ".ppm", ".pgm",
}  # fmt: skip
_PIL_LIMIT_LOCK = threading.Lock()
_ORIENTATION = 0x0112


class ImageReadError(Exception):
    """An input that cannot be used; ``str(err)`` is one line naming the file and the reason."""


@dataclass
class Picture:
    """Pixels ready for upscaling.

    color: ``(H, W, 3)`` RGB or ``(H, W)`` grey; uint8 or uint16.
    alpha: ``(H, W)`` with the same dtype, or None.
    icc: ICC profile bytes to embed in the output, or None.
    """

    color: np.ndarray
    alpha: np.ndarray | None = None
    icc: bytes | None = None

    @property
    def grey(self) -> bool:
        return self.color.ndim == 2

    @property
    def bits(self) -> int:
        return 16 if self.color.dtype == np.uint16 else 8

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)``."""
        return self.color.shape[0], self.color.shape[1]


# -- reading ------------------------------------------------------------------------------------
def _png_bit_depth(path: Path) -> int | None:
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return head[24]


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


def _read_png16(path: Path, orientation: int, icc: bytes | None) -> Picture:
    a = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if a is None or a.dtype != np.uint16:
        raise ImageReadError(f"{path}: cannot decode 16-bit PNG")
    alpha = None
    if a.ndim == 3 and a.shape[2] == 4:
        alpha, a = a[:, :, 3], cv2.cvtColor(a[:, :, :3], cv2.COLOR_BGR2RGB)
    elif a.ndim == 3 and a.shape[2] == 3:
        a = cv2.cvtColor(a, cv2.COLOR_BGR2RGB)
    elif a.ndim == 3 and a.shape[2] == 2:
        alpha, a = a[:, :, 1], a[:, :, 0]
    a = np.ascontiguousarray(_apply_orientation(a, orientation))
    if alpha is not None:
        alpha = np.ascontiguousarray(_apply_orientation(alpha, orientation))
    return Picture(a, alpha, icc)


def picture_from_pil(im: Image.Image) -> Picture:
    """A loaded PIL image → :class:`Picture` (EXIF orientation applied, modes normalised)."""
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
        a = np.asarray(im, dtype=np.float32)
        hi = 255.0 if float(a.max(initial=0.0)) > 1.0 else 1.0
        return Picture(np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8), None, icc)
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


def read_image(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Picture:
    """Read an image file as a :class:`Picture`; raises :class:`ImageReadError` (one line)."""
    path = Path(path)
    if not path.exists():
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
            if w < 1 or h < 1:
                raise ImageReadError(f"{path}: image has no pixels ({w}×{h})")
            if max_pixels is not None and w * h > max_pixels:
                raise ImageReadError(
                    f"{path}: {w}×{h} = {w * h:,} pixels exceeds the limit of {max_pixels:,} "
                    "(a decompression-bomb guard; raise it with --max-pixels)"
                )
            if im.format == "PNG" and _png_bit_depth(path) == 16:
                orientation = im.getexif().get(_ORIENTATION, 1)
                return _read_png16(path, orientation, im.info.get("icc_profile") or None)
            im.load()
            return picture_from_pil(im)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{path}: not an image (or a format Pillow cannot read)") from None
    except (OSError, ValueError, SyntaxError, EOFError, struct.error) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ImageReadError(f"{path}: cannot read image ({reason})") from None


# -- writing ------------------------------------------------------------------------------------
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _iccp_chunk(icc: bytes) -> bytes:
    # iCCP: profile name (1–79 bytes), NUL, compression method 0, zlib-compressed profile.
    return _png_chunk(b"iCCP", b"ICC profile\x00\x00" + zlib.compress(icc))


def _to_8bit(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)


def write_image(
    path: str | os.PathLike,
    pic: Picture,
    fmt: str = "png",
    quality: int = 95,
    consume: bool = False,
) -> Path:
    """Write ``pic`` atomically as PNG (8/16 bits, alpha, ICC), JPEG (no alpha) or WebP.

    ``consume=True`` lets the PNG writer reorder ``pic.color`` to BGR in place instead of
    copying it (saves one image-sized buffer on huge outputs; ``pic`` is garbage afterwards).
    """
    path = Path(path)
    if fmt not in FORMATS:
        raise ValueError(f"unknown output format '{fmt}' (choose from {', '.join(FORMATS)})")
    if fmt == "png":
        color = pic.color
        if pic.grey:
            arr = color if pic.alpha is None else np.dstack([color, pic.alpha])
        else:
            code = cv2.COLOR_RGB2BGR if pic.alpha is None else cv2.COLOR_RGBA2BGRA
            arr = color if pic.alpha is None else np.dstack([color, pic.alpha])
            owned = consume or arr is not color  # a fresh dstack may be reordered in place
            arr = cv2.cvtColor(arr, code, dst=arr) if owned else cv2.cvtColor(arr, code)
        ok, buf = cv2.imencode(".png", arr)
        if not ok:
            raise OSError(f"{path}: OpenCV could not encode the PNG")
        data = memoryview(buf.reshape(-1))
        del arr

        def write(f):
            if pic.icc:
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
    """:class:`Picture` → PIL image (RGB/RGBA/L/LA; 16-bit grey without alpha stays ``I;16``).

    Pillow has no 16-bit RGB mode, so 16-bit colour pictures come back as 8-bit.
    """
    if pic.grey and pic.alpha is None and pic.bits == 16 and not eight_bit:
        im = Image.fromarray(pic.color)  # mode I;16
    elif pic.alpha is None:
        im = Image.fromarray(_to_8bit(pic.color))
    else:
        im = Image.fromarray(np.dstack([_to_8bit(pic.color), _to_8bit(pic.alpha)]))
    if pic.icc:
        im.info["icc_profile"] = pic.icc
    return im
