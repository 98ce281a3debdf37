import pytest

from flowmapsr.config import ConfigError
from flowmapsr.nets import NETS
from flowmapsr.objectives import OBJECTIVES
from flowmapsr.training.config import TrainConfig
from flowmapsr.training.presets import (
    list_presets,
    list_recipes,
    preset_dict,
    recipe_dict,
    resolve_config,
)


def test_every_shipped_preset_resolves():
    names = list_presets()
    assert {
        "flowmapsr-stage1-fm",
        "flowmapsr-stage2-distill",
        "flowmapsr-stage3-guidance",
        "flowmapsr-stage4-adversarial",
    } <= set(names)
    for name in names:
        needs_teacher = OBJECTIVES[preset_dict(name)["objective"]["name"]].needs_frozen_teacher
        if needs_teacher:  # distils a frozen teacher: resolves only with a start (a recipe sets it)
            with pytest.raises(ConfigError, match="init_from must be set"):
                resolve_config(name)
            assert isinstance(resolve_config(name, ["init_from=runs/x/export"]), TrainConfig)
        else:
            assert isinstance(resolve_config(name), TrainConfig)


def test_flowsr_presets_configure_their_stages():
    s1 = resolve_config("flowsr-stage1-srflow")
    assert s1.objective.name == "srflow" and s1.objective.bridge_noise == 0
    assert s1.objective.distance.perceptual.kind == "lpips" and s1.data.source_noise == 0
    s2 = resolve_config("flowsr-stage2-consistency", ["init_from=runs/x/export"])
    pairs = s2.objective.pairs
    assert s2.objective.name == "consistency" and pairs.sampler == "fast_slow"
    assert (pairs.slow_steps, pairs.fast_steps, pairs.diagonal_fraction) == (1000, 4, 0.0)
    assert len(recipe_dict("flowsr-smoke")["stages"]) == 2


def test_stage_presets_inherit_and_configure_their_stage():
    s2 = resolve_config("flowmapsr-stage2-distill")
    assert s2.objective.name == "shortcut" and s2.net.channels == 64  # net from stage 1
    s3 = resolve_config("flowmapsr-stage3-guidance")
    assert s3.objective.guidance.enabled and s3.data.negatives
    s4 = resolve_config("flowmapsr-stage4-adversarial")
    assert s4.adversarial.enabled and s4.adversarial.lora.rank == 8
    assert s4.adversarial.perceptual.kind == "lpips"
    assert "base" not in preset_dict("flowmapsr-stage4-adversarial")


def test_small_net_presets_leave_the_source_out_of_the_input_and_an_override_restores_it():
    """Stage 1 (and what inherits it) trains the small net without the source beside ``x_t``
    (docs/training, backbone sweep); the large backbones keep their zero-initialised source
    channels; ``net.concat_source=true`` gives the shipped model's setting back."""
    for name in ("flowmapsr-stage1-fm", "flowmapsr-stage2-distill", "flowsr-stage1-srflow"):
        c = resolve_config(name)
        assert c.net.type == "small" and c.net.concat_source is False, name
    assert resolve_config("flowmapsr-stage1-fm", ["net.concat_source=true"]).net.concat_source
    for name in ("tiny-sdxl-flowmapsr", "tiny-sd21-flowmapsr", "tiny-flux-flowmapsr"):
        assert resolve_config(name).net.concat_source is True, name


def test_overrides_are_strict_and_name_the_nearest_key():
    cfg = resolve_config("flowmapsr-stage2-distill", ["objective.name=lagrangian", "optim.lr=3e-4"])
    assert cfg.objective.name == "lagrangian" and cfg.optim.lr == pytest.approx(3e-4)
    with pytest.raises(ConfigError, match="did you mean 'optim.lr'"):
        resolve_config("flowmapsr-stage1-fm", ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="unknown preset"):
        resolve_config("flowmapsr-stage9")


def test_recipes_list_four_stages():
    assert {"flowmapsr-smoke", "flowmapsr-small"} <= set(list_recipes())
    for name in ("flowmapsr-smoke", "flowmapsr-small"):
        assert len(recipe_dict(name)["stages"]) == 4


def test_preset_from_a_yaml_path(tmp_path):
    p = tmp_path / "mine.yaml"
    p.write_text("base: flowmapsr-stage1-fm\nmax_steps: 7\n", encoding="utf-8")
    assert resolve_config(str(p)).max_steps == 7
    p.write_text("max_stepz: 7\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="max_steps"):
        resolve_config(str(p))


def test_a_child_preset_can_switch_the_backbone(tmp_path):
    """``net`` merges key by key for the same type; another type replaces the base's section."""
    base = resolve_config("flowmapsr-stage1-fm").net
    p = tmp_path / "mine.yaml"
    p.write_text("base: flowmapsr-stage1-fm\nnet: {blocks: 3}\n", encoding="utf-8")
    same = resolve_config(str(p)).net
    assert same.blocks == 3 and same.channels == base.channels and same.type == "small"
    p.write_text("base: flowmapsr-stage1-fm\nnet: {type: mlp, dim: 3}\n", encoding="utf-8")
    other = resolve_config(str(p)).net
    assert other == NETS["mlp"].config_cls(dim=3)


def test_the_built_in_models_recipe_is_flow_matching_then_the_adversarial_lora(tmp_path):
    """flowmapsr-small-fm-gan: the same 32x8 net in both stages; stage 4 starts from stage 1's
    export, anchors on stage 1's own loss (no guidance, no distillation) and trains the
    Real-ESRGAN-style terms of the stage-4 preset."""
    from flowmapsr.training.recipe import stage_configs

    s1, s4 = stage_configs("flowmapsr-small-fm-gan", tmp_path)
    assert s1.name == "stage1-fm" and s4.name == "stage4-adversarial"
    assert s1.net == s4.net and s1.net.channels == 32 and not s1.net.concat_source
    assert s4.init_from == str(tmp_path / "stage1-fm" / "export")
    assert s4.objective.name == "fm" and not s4.objective.guidance.enabled
    assert not s4.data.negatives and s4.mixed_precision == "bf16"
    adv = s4.adversarial
    assert adv.enabled and adv.disc.kind == "unet" and adv.disc.spectral_norm
    assert adv.perceptual.kind == "lpips" and adv.perceptual.lpips_net == "vgg"
    assert [(t.name, t.weight) for t in s4.terms] == [("l1", 1.0)]
