import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from flowmapsr.data.datasets import (
    HRFolderDataset,
    ImageFolderDataset,
    ImageReadError,
    PairedFolderDataset,
    read_image,
)


def _save(path, h, w, seed=0, mode="RGB"):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(a)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path)
    return a


@pytest.fixture
def hr_dir(tmp_path):
    d = tmp_path / "hr"
    d.mkdir()
    _save(d / "a.png", 80, 70, 1)
    _save(d / "b.jpg", 64, 96, 2)
    _save(d / "small.png", 20, 30, 3)  # smaller than the crop
    _save(d / "grey.png", 50, 50, 4, mode="L")
    (d / "corrupt.png").write_bytes(b"this is not a png")
    (d / "notes.txt").write_text("ignored: not an image extension")
    return d


def test_hr_folder_skips_corrupt_file_with_warning(hr_dir):
    with pytest.warns(UserWarning, match="corrupt.png"):
        ds = HRFolderDataset(str(hr_dir), crop_size=32, seed=0)
    assert len(ds) == 4
    for i in range(len(ds)):
        item = ds[i]
        assert item["hr"].shape == (3, 32, 32)
        assert 0 <= item["hr"].min() and item["hr"].max() <= 1
    small = next(i for i in range(4) if ds.paths[i].name == "small.png")
    assert ds[small]["hr"].shape == (3, 32, 32)  # upscaled to the crop


def test_hr_folder_crops_are_seeded_by_seed_epoch_index(hr_dir):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = HRFolderDataset(str(hr_dir), crop_size=32, seed=5)
        other = HRFolderDataset(str(hr_dir), crop_size=32, seed=6)
    first = [ds[i]["hr"] for i in range(len(ds))]
    assert all(torch.equal(first[i], ds[i]["hr"]) for i in range(len(ds)))  # repeatable
    per_epoch = []
    for e in range(4):
        ds.set_epoch(e)
        per_epoch.append(torch.stack([ds[i]["hr"] for i in range(len(ds))]))
    assert torch.equal(per_epoch[0], torch.stack(first))  # epoch 0 is the default
    assert not torch.equal(per_epoch[0], per_epoch[1])  # a new epoch, new crops
    assert not torch.equal(torch.stack(first), torch.stack([other[i]["hr"] for i in range(4)]))


def test_hr_folder_substitutes_a_file_that_fails_to_decode(tmp_path):
    d = tmp_path / "hr"
    d.mkdir()
    _save(d / "good.png", 40, 40, 1)
    _save(d / "trunc.png", 64, 64, 2)
    data = (d / "trunc.png").read_bytes()
    (d / "trunc.png").write_bytes(data[: len(data) // 2])  # header fine, pixels missing
    ds = HRFolderDataset(str(d), crop_size=32, augment=False)
    assert len(ds) == 2  # the header still reads at index time
    bad = next(i for i in range(2) if ds.paths[i].name == "trunc.png")
    with pytest.warns(UserWarning, match="trunc.png"):
        item = ds[bad]
    assert item["path"].endswith("good.png") and item["hr"].shape == (3, 32, 32)
    for _ in range(2):  # a whole epoch runs through
        assert all(ds[i]["hr"].shape == (3, 32, 32) for i in range(len(ds)))


def test_hr_folder_rejects_bad_crop_and_empty(tmp_path):
    with pytest.raises(ValueError, match="multiple of 8"):
        HRFolderDataset(str(tmp_path), crop_size=30)
    with pytest.raises(ValueError, match="no readable images"):
        HRFolderDataset(str(tmp_path), crop_size=32)


def _pair_dirs(tmp_path, scale=4):
    lr_dir, hr_dir = tmp_path / "lr", tmp_path / "hr"
    lr_dir.mkdir()
    hr_dir.mkdir()
    for k, (h, w) in enumerate([(64, 48), (48, 80)]):
        hr = _save(hr_dir / f"img{k}.png", h + 2, w + 1, k)  # +2/+1: the usual mod-crop excess
        crop = hr[:h, :w].astype(np.float64)
        lr = crop.reshape(h // scale, scale, w // scale, scale, 3).mean(axis=(1, 3))
        Image.fromarray(np.round(lr).astype(np.uint8)).save(lr_dir / f"img{k}.png")
    _save(hr_dir / "lonely.png", 16, 16, 9)
    return lr_dir, hr_dir


def test_paired_folder_aligned_crops_with_augmentation(tmp_path):
    lr_dir, hr_dir = _pair_dirs(tmp_path)
    with pytest.warns(UserWarning, match="lonely.png"):
        ds = PairedFolderDataset(str(lr_dir), str(hr_dir), scale=4, crop_size=32, augment=True)
    assert len(ds) == 2
    for e in range(3):
        ds.set_epoch(e)
        for i in range(2):
            it = ds[i]
            assert it["lr"].shape == (3, 8, 8) and it["hr"].shape == (3, 32, 32)
            pooled = torch.nn.functional.avg_pool2d(it["hr"].unsqueeze(0), 4)[0]
            assert (pooled - it["lr"]).abs().max() <= 0.6 / 255  # same region, same flips


def test_paired_folder_full_images_and_mismatch(tmp_path):
    lr_dir, hr_dir = _pair_dirs(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = PairedFolderDataset(str(lr_dir), str(hr_dir), scale=4)
    it = ds[0]
    assert it["hr"].shape[-2:] == (it["lr"].shape[-2] * 4, it["lr"].shape[-1] * 4)
    _save(lr_dir / "img0.png", 5, 5, 1)  # now the wrong size for its HR
    with pytest.warns(UserWarning, match="does not match"):
        assert ds[0]["path"].endswith("img1.png")


def test_image_folder_and_read_image(hr_dir):
    with pytest.warns(UserWarning, match="corrupt.png"):
        ds = ImageFolderDataset(str(hr_dir))
    assert len(ds) == 4
    shapes = {ds[i]["path"].rsplit("/", 1)[-1]: tuple(ds[i]["image"].shape) for i in range(4)}
    assert shapes["a.png"] == (3, 80, 70) and shapes["grey.png"] == (3, 50, 50)
    with pytest.raises(ImageReadError, match="corrupt.png"):
        read_image(hr_dir / "corrupt.png")


def test_read_image_max_side_and_16bit(tmp_path):
    _save(tmp_path / "big.jpg", 120, 200, 0)
    assert read_image(tmp_path / "big.jpg").shape == (3, 120, 200)
    assert read_image(tmp_path / "big.jpg", max_side=64).shape == (3, 38, 64)
    ds = HRFolderDataset(str(tmp_path), crop_size=32, max_side=64)
    assert ds[0]["hr"].shape == (3, 32, 32)
    a16 = (np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) * 50).astype(np.uint16)
    Image.fromarray(a16).save(tmp_path / "deep.png")
    x = read_image(tmp_path / "deep.png")
    assert x.shape == (3, 40, 30) and x.max() <= 1
    assert x[0, -1, -1].item() == pytest.approx(a16.max() / 65535, abs=1 / 255)
