"""A stage starting from an export (``init_from``) takes the export's network, but how that
network computes — gradient checkpointing, the attention kernel — is the stage's own choice."""

from flowmapsr.training.presets import resolve_config
from flowmapsr.training.trainer import Trainer, train


def test_a_later_stage_turns_gradient_checkpointing_on_over_an_export_without_it(tmp_path):
    first = tmp_path / "stage1"
    export = train(resolve_config("tiny-sd21-flowmapsr", [f"output_dir={first}", "max_steps=1"]))
    # The objective is shortcut (no JVP), so recomputed blocks are allowed.
    cfg = resolve_config(
        "tiny-sd21-flowmapsr",
        [
            f"output_dir={tmp_path / 'stage2'}",
            f"init_from={export}",
            "max_steps=1",
            "net.gradient_checkpointing=true",
            "net.attention=math",
        ],
    )
    t = Trainer(cfg)
    assert t.net.backbone.is_gradient_checkpointing
    assert t.net.config.attention == "math"
    assert t.config.net.gradient_checkpointing and t.config.net.attention == "math"
    assert "gradient_checkpointing=True" in t.init_note
    t.fit()
    # Without the override the export's setting (off) stands, and nothing is noted.
    plain = Trainer(
        resolve_config(
            "tiny-sd21-flowmapsr",
            [f"output_dir={tmp_path / 'stage2b'}", f"init_from={export}", "max_steps=1"],
        )
    )
    assert not plain.net.backbone.is_gradient_checkpointing
    assert "from this stage" not in plain.init_note
