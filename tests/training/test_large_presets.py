"""The real-size large-backbone presets (SDXL, SD 2.1, FLUX.1-dev): they resolve without the
weights, point the backbone, its VAE and its text encoders at one local diffusers folder, put
LoRA on the adapter's targets, and fail in one line naming the folder when it is missing."""

import subprocess
import sys

import pytest

from flowmapsr.training.presets import list_presets, resolve_config

LARGE = {
    "sdxl-flowmapsr": ("unet", "sdxl", "models/sdxl-base", 77),
    "sd21-flowmapsr": ("unet", "sd21", "models/sd21-base", 77),
    "flux-flowmapsr": ("flux", None, "models/flux1-dev", 512),
}


def _targets(net_type: str, variant: str | None) -> str:
    if net_type == "flux":
        from flowmapsr.nets.flux_adapter import lora_target_regex

        return lora_target_regex()
    from flowmapsr.nets.unet_adapter import lora_target_regex

    return lora_target_regex(variant)


@pytest.mark.parametrize("name", sorted(LARGE))
def test_a_large_preset_resolves_to_one_weights_folder_with_lora_in_bf16(name):
    net_type, variant, folder, tokens = LARGE[name]
    assert name in list_presets()
    c = resolve_config(name)
    assert c.net.type == net_type and c.net.pretrained == folder
    if variant is not None:
        assert c.net.variant == variant
    # The VAE and the text encoders come from the same folder (encoders=None: the backbone's).
    assert c.codec.type == "vae" and c.codec.pretrained == folder and c.codec.tile == 1024
    assert c.net.prompts.encoders is None and c.net.prompts.tokens == tokens
    assert c.mixed_precision == "bf16" and c.frozen_dtype == "bfloat16"
    assert c.lora is not None and c.lora.rank == 16
    assert c.lora.targets == _targets(net_type, variant)
    assert c.objective.name == "shortcut"
    # One override moves everything to another folder.
    moved = resolve_config(name, ["net.pretrained=/data/w", "codec.pretrained=/data/w"])
    assert moved.net.pretrained == moved.codec.pretrained == "/data/w"


@pytest.mark.parametrize("name", sorted(LARGE))
def test_a_missing_weights_folder_is_one_line_naming_it(name, tmp_path):
    from flowmapsr.codecs import build_codec
    from flowmapsr.nets import build_net

    folder = LARGE[name][2]
    c = resolve_config(name)
    with pytest.raises(FileNotFoundError, match=folder) as err:
        build_net(c.net)
    assert "\n" not in str(err.value)
    elsewhere = str(tmp_path / "no-such-weights")
    c = resolve_config(name, [f"codec.pretrained={elsewhere}"])
    with pytest.raises(FileNotFoundError, match="no-such-weights") as err:
        build_codec(c.codec)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", sorted(LARGE))
def test_train_dry_run_prints_the_large_preset(name):
    proc = subprocess.run(
        [sys.executable, "-m", "flowmapsr", "train", name, "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"pretrained: {LARGE[name][2]}" in proc.stdout
    assert "mixed_precision: bf16" in proc.stdout
