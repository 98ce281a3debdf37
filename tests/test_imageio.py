"""Image files as people have them: modes, 16 bits, EXIF orientation, ICC, bad files, atomicity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from flowmapsr.imageio import (
    ImageReadError,
    Picture,
    _apply_orientation,
    picture_to_pil,
    read_image,
    to_16bit,
    write_image,
)
from flowmapsr.inference.api import upscale_picture
from flowmapsr.inference.random_model import random_pipeline

RNG = np.random.default_rng(0)


def _rgb(h=12, w=10):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _srgb_icc() -> bytes:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@pytest.fixture(scope="module")
def pipe():
    return random_pipeline({"type": "small", "channels": 16, "blocks": 2}, seed=2)


def test_rgb_png_roundtrip_with_icc(tmp_path):
    a = _rgb()
    icc = _srgb_icc()
    Image.fromarray(a).save(tmp_path / "a.png", icc_profile=icc)
    pic = read_image(tmp_path / "a.png")
    assert pic.color.dtype == np.uint8 and pic.color.shape == (12, 10, 3) and pic.alpha is None
    np.testing.assert_array_equal(pic.color, a)
    assert pic.icc == icc
    out = write_image(tmp_path / "o.png", pic)
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.info.get("icc_profile") == icc
        np.testing.assert_array_equal(np.asarray(im), a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "o.png"]  # no temp files


def test_rgba_alpha_is_upscaled_separately(tmp_path, pipe):
    rgba = np.dstack([_rgb(), RNG.integers(0, 256, (12, 10), dtype=np.uint8)])
    Image.fromarray(rgba).save(tmp_path / "a.png")
    pic = read_image(tmp_path / "a.png")
    assert pic.alpha is not None and pic.color.shape == (12, 10, 3)
    res = upscale_picture(pipe, pic, scale=4)
    assert res.color.shape == (48, 40, 3) and res.alpha.shape == (48, 40)
    expect = cv2.resize(rgba[:, :, 3], (40, 48), interpolation=cv2.INTER_CUBIC)
    np.testing.assert_array_equal(res.alpha, expect)
    write_image(tmp_path / "o.png", res)
    with Image.open(tmp_path / "o.png") as im:
        assert im.mode == "RGBA" and im.size == (40, 48)


def test_grey_and_palette_images(tmp_path, pipe):
    Image.fromarray(_rgb()[:, :, 0]).save(tmp_path / "g.png")
    pic = read_image(tmp_path / "g.png")
    assert pic.grey
    res = upscale_picture(pipe, pic, scale=2)
    assert res.grey and res.color.shape == (24, 20)
    write_image(tmp_path / "go.png", res)
    with Image.open(tmp_path / "go.png") as im:
        assert im.mode == "L" and im.size == (20, 24)

    Image.fromarray(_rgb()).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").color.shape == (12, 10, 3)
    pal = Image.fromarray(_rgb()).convert("P")
    pal.save(tmp_path / "pt.png", transparency=0)
    assert read_image(tmp_path / "pt.png").alpha is not None


def test_16bit_png_stays_16bit(tmp_path, pipe):
    a = RNG.integers(0, 65536, (12, 10, 3), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "a16.png"), cv2.cvtColor(a, cv2.COLOR_RGB2BGR))
    pic = read_image(tmp_path / "a16.png")
    assert pic.bits == 16
    np.testing.assert_array_equal(pic.color, a)
    res = upscale_picture(pipe, pic, scale=4)
    assert res.color.dtype == np.uint16
    # More than 256 distinct levels: the result was not squeezed through 8 bits.
    assert np.unique(res.color).size > 1000
    write_image(tmp_path / "o16.png", res)
    back = cv2.imread(str(tmp_path / "o16.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and back.shape == (48, 40, 3)
    np.testing.assert_array_equal(cv2.cvtColor(back, cv2.COLOR_BGR2RGB), res.color)

    grey = RNG.integers(0, 65536, (9, 7), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "g16.png"), grey)
    gp = read_image(tmp_path / "g16.png")
    assert gp.grey and gp.bits == 16
    np.testing.assert_array_equal(gp.color, grey)
    assert picture_to_pil(gp).mode == "I;16"


def test_16bit_png_keeps_icc(tmp_path):
    pic = Picture(RNG.integers(0, 65536, (5, 6, 3), dtype=np.uint16), None, _srgb_icc())
    write_image(tmp_path / "i16.png", pic)
    with Image.open(tmp_path / "i16.png") as im:
        assert im.info.get("icc_profile") == pic.icc
    back = cv2.imread(str(tmp_path / "i16.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(cv2.cvtColor(back, cv2.COLOR_BGR2RGB), pic.color)


def test_cmyk_is_converted_to_rgb(tmp_path):
    Image.fromarray(_rgb()).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    pic = read_image(tmp_path / "c.jpg")
    assert pic.color.shape == (12, 10, 3) and pic.icc is None


def test_exif_orientation_is_applied(tmp_path):
    a = _rgb(8, 14)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.fromarray(a).save(tmp_path / "r.jpg", exif=exif, quality=95)
    pic = read_image(tmp_path / "r.jpg")
    assert pic.size == (14, 8)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_array_orientation_matches_pillow(orientation):
    a = _rgb(5, 7)
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = orientation
    im.info["exif"] = exif.tobytes()
    expect = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(_apply_orientation(a, orientation), expect)


def test_pixel_limit_stops_decompression_bombs(tmp_path):
    Image.fromarray(_rgb(40, 40)).save(tmp_path / "big.png")
    with pytest.raises(ImageReadError, match=r"big.png: 40×40 = 1,600 pixels exceeds .*1,000"):
        read_image(tmp_path / "big.png", max_pixels=1000)
    assert read_image(tmp_path / "big.png", max_pixels=1600).size == (40, 40)


def test_bad_files_give_one_line_errors(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello, not an image")
    Image.fromarray(_rgb(64, 64)).save(tmp_path / "full.png")
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    cases = {
        "missing.png": "no such file",
        "empty.png": "empty file",
        "text.png": "not an image",
        "cut.png": "cannot read image",
    }
    for name, reason in cases.items():
        with pytest.raises(ImageReadError) as info:
            read_image(tmp_path / name)
        msg = str(info.value)
        assert name in msg and reason in msg and "\n" not in msg
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image(tmp_path)
    (tmp_path / "dangling.png").symlink_to("gone.png")
    with pytest.raises(ImageReadError, match=r"dangling.png: broken symbolic link .*gone.png"):
        read_image(tmp_path / "dangling.png")


@pytest.mark.parametrize("fmt,mode", [("jpg", "RGB"), ("webp", "RGBA")])
def test_lossy_formats(tmp_path, fmt, mode):
    pic = Picture(_rgb(), RNG.integers(0, 256, (12, 10), dtype=np.uint8), _srgb_icc())
    out = write_image(tmp_path / f"o.{fmt}", pic, fmt=fmt, quality=90)
    with Image.open(out) as im:
        assert im.mode == mode and im.size == (10, 12)
        assert im.info.get("icc_profile") == pic.icc


def test_failed_write_leaves_no_file(tmp_path):
    pic = Picture(_rgb())
    with pytest.raises(ValueError):
        write_image(tmp_path / "o.bmp", pic, fmt="bmp")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt,kind", [("gif", "GIF"), ("tif", "TIFF"), ("webp", "WEBP")])
def test_multi_frame_files_are_refused_unless_frame_0_is_asked_for(tmp_path, fmt, kind):
    """Never a silent first-frame drop: one line naming the file and its frame count."""
    frames = [Image.new("RGB", (12, 10), c) for c in ("red", "green", "blue")]
    path = tmp_path / f"anim.{fmt}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100)
    with pytest.raises(ImageReadError, match=r"anim\.\w+: .*3 frames.*--first-frame") as err:
        read_image(path)
    assert "\n" not in str(err.value)
    pic = read_image(path, first_frame=True)
    assert pic.frames == 3 and pic.color.shape[:2] == (10, 12)
    r, g, b = (int(v) for v in pic.color[0, 0])
    assert r > 200 and g < 60 and b < 60  # frame 0 is the red one (lossy WebP: near red)


def test_float_tiff_above_one_is_clipped_with_a_note_not_rescaled(tmp_path):
    """A float image is nominal [0, 1]: values > 1 are clipped (with a note), never taken as a
    0–255 scale, and the rest keeps float precision."""
    a = np.linspace(0.0, 3.0, 16 * 16, dtype=np.float32).reshape(16, 16)
    path = tmp_path / "f.tif"
    Image.fromarray(a, mode="F").save(path)
    pic = read_image(path)
    assert pic.color.dtype == np.float32
    np.testing.assert_allclose(pic.color[a <= 1], a[a <= 1])
    assert pic.color.max() == 1.0 and any("clipped" in n for n in pic.notes)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("fmt", ["png", "tif"])
def test_grey_with_alpha_is_written_at_its_depth(tmp_path, fmt, dtype):
    """OpenCV cannot encode 2 channels: 8-bit grey + alpha goes through Pillow as LA, deeper ones
    as RGBA with the grey repeated, keeping the samples."""
    if dtype == np.float32:
        grey, alpha = RNG.random((12, 10), dtype=np.float32), RNG.random((12, 10), np.float32)
    else:
        top = np.iinfo(dtype).max + 1
        grey, alpha = RNG.integers(0, top, (2, 12, 10), dtype=dtype)
    out = write_image(tmp_path / f"la.{fmt}", Picture(grey, alpha), fmt=fmt)
    back = read_image(out)
    if fmt == "png" and dtype == np.float32:
        grey, alpha = to_16bit(grey), to_16bit(alpha)  # PNG holds 16 bits
    assert back.alpha is not None and back.alpha.dtype == alpha.dtype
    assert np.array_equal(back.alpha, alpha)
    colour = back.color if back.grey else back.color[:, :, 0]
    assert np.array_equal(colour, grey) and (back.grey or np.ptp(back.color, axis=2).max() == 0)
    assert back.grey == (dtype == np.uint8)


@pytest.mark.parametrize("channels", [3, 4])
def test_16bit_colour_tiff_keeps_16_bits(tmp_path, channels):
    """Pillow opens 16-bit RGB(A) TIFFs as 8-bit; the reader takes their samples from OpenCV."""
    a = RNG.integers(0, 65536, (12, 10, channels), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "c.tif"), a)  # BGR(A) order
    pic = read_image(tmp_path / "c.tif")
    assert pic.bits == 16 and np.array_equal(pic.color, a[:, :, 2::-1])
    assert (pic.alpha is None) if channels == 3 else np.array_equal(pic.alpha, a[:, :, 3])
