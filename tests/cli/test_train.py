import pytest
import yaml

from flowmapsr.cli import recipe as recipe_cli
from flowmapsr.cli import train as train_cli


def test_dry_run_prints_the_resolved_config(capsys):
    assert (
        train_cli.main(["flowmapsr-stage2-distill", "objective.name=lagrangian", "--dry-run"]) == 0
    )
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["objective"]["name"] == "lagrangian" and cfg["name"] == "stage2-distill"


def test_unknown_key_exits_non_zero_naming_the_nearest(capsys):
    assert train_cli.main(["flowmapsr-stage1-fm", "optim.lrr=1", "--dry-run"]) == 2
    assert "did you mean 'optim.lr'" in capsys.readouterr().err
    assert train_cli.main(["no-such-preset", "--dry-run"]) == 2


def test_list_presets_and_recipes(capsys):
    assert train_cli.main(["--list"]) == 0
    assert "flowmapsr-stage4-adversarial" in capsys.readouterr().out
    assert recipe_cli.main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "flowmapsr-smoke" in out and "flowmapsr-small" in out


def test_recipe_dry_run_and_bad_stage_override(capsys, tmp_path):
    assert (
        recipe_cli.main(
            [
                "flowmapsr-smoke",
                "--output",
                str(tmp_path),
                "--dry-run",
                "--stage",
                "stage1-fm:max_steps=3",
            ]
        )
        == 0
    )
    stages = yaml.safe_load(capsys.readouterr().out)
    assert stages[0]["max_steps"] == 3 and stages[1]["max_steps"] != 3
    assert (
        recipe_cli.main(
            [
                "flowmapsr-smoke",
                "--output",
                str(tmp_path),
                "--dry-run",
                "--stage",
                "stage1-fm:max_stepz=3",
            ]
        )
        == 2
    )


def test_train_missing_data_root_is_a_clear_error(tmp_path, capsys):
    code = train_cli.main(
        [
            "flowmapsr-stage1-fm",
            f"data.roots=[{tmp_path / 'missing'}]",
            f"output_dir={tmp_path / 'o'}",
            "progress=none",
            "tensorboard=false",
        ]
    )
    assert code == 1
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", [train_cli, recipe_cli])
def test_add_parser_is_cheap_and_registers(cmd):
    import argparse

    sub = argparse.ArgumentParser().add_subparsers()
    assert cmd.add_parser(sub) is not None


def test_through_the_main_entry_point(capsys):
    from flowmapsr.cli.main import main

    assert main(["train", "flowmapsr-stage3-guidance", "--dry-run"]) == 0
    assert "guidance" in capsys.readouterr().out
    assert main(["train", "flowmapsr-stage3-guidance", "objective.guidance.omega_mx=2"]) == 2
    assert "omega_max" in capsys.readouterr().err


@pytest.mark.parametrize(
    "override,key",
    [
        ("max_steps=-5", "max_steps"),
        ("max_steps=0", "max_steps"),
        ("data.batch_size=0", "data.batch_size"),
        ("data.batch_size=-2", "data.batch_size"),
        ("optim.lr=nan", "optim.lr"),
        ("optim.lr=-1e-4", "optim.lr"),
        ("optim.lr=.inf", "optim.lr"),
        ("log_every=0", "log_every"),
        ("grad_accum=0", "grad_accum"),
        ("objective.pairs.sampler=nope", "objective.pairs.sampler"),
        ("objective.name=nope", "objective.name"),
        ("data.degradation=nope", "data.degradation"),
        ("data.crop_size=30", "data.crop_size"),
        ("validation.crop=30", "validation.crop"),
        ("objective.consistency.iqa=0.5", "objective.consistency.iqa_model"),
    ],
)
def test_dry_run_rejects_values_the_run_cannot_use(capsys, override, key):
    assert train_cli.main(["flowmapsr-stage1-fm", override, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{key} must be" in err, err


def test_recipe_dry_run_rejects_a_bad_stage_value(capsys, tmp_path):
    argv = ["flowmapsr-smoke", "--output", str(tmp_path), "--dry-run"]
    assert recipe_cli.main([*argv, "--stage", "stage1-fm:data.batch_size=0"]) == 2
    err = capsys.readouterr().err
    assert "stage 'stage1-fm'" in err and "data.batch_size must be ≥ 1" in err


def test_dry_run_names_the_registered_network_types(capsys):
    from flowmapsr.nets import NETS

    assert train_cli.main(["flowmapsr-stage1-fm", "net.type=huge", "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "net.type: unknown network type 'huge'" in err, err
    assert all(name in err for name in NETS)
    # Small-net overrides still reach the small net (the default type).
    assert train_cli.main(["flowmapsr-stage1-fm", "net.channels=32", "--dry-run"]) == 0
    assert "channels: 32" in capsys.readouterr().out
