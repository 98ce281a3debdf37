import pytest
import torch

from flowmapsr.training import checkpoint as ckpt


def _adam_state():
    p = torch.nn.Parameter(torch.randn(3, 2))
    q = torch.nn.Parameter(torch.randn(4))
    opt = torch.optim.AdamW([p, q], lr=1e-3)
    for _ in range(2):
        (p.sum() ** 2 + q.pow(3).sum()).backward()
        opt.step()
    return opt


def test_optimizer_state_roundtrips_without_pickle():
    opt = _adam_state()
    tensors, meta = ckpt.optimizer_to_flat(opt.state_dict())
    back = ckpt.optimizer_from_flat(tensors, meta)
    ref = opt.state_dict()
    assert back["param_groups"] == ref["param_groups"]
    for pid, entries in ref["state"].items():
        for k, v in entries.items():
            assert torch.equal(back["state"][pid][k], v)


def test_commit_is_atomic_and_keeps_the_latest(tmp_path):
    for step in (1, 2, 3):
        w = ckpt.CheckpointWriter(tmp_path, step)
        w.begin()
        w.tensors("model", {"w": torch.full((2,), float(step))})
        w.json("state.json", {"step": step})
        # Before the commit, no complete checkpoint for this step is visible.
        assert all(p.name != ckpt.checkpoint_name(step) for p in ckpt.list_checkpoints(tmp_path))
        w.commit(keep=2)
    names = [p.name for p in ckpt.list_checkpoints(tmp_path)]
    assert names == ["step-00000002", "step-00000003"]
    assert not list(tmp_path.glob(".tmp-*"))
    latest = ckpt.latest_checkpoint(tmp_path)
    assert ckpt.read_tensors(latest, "model")["w"][0] == 3
    assert ckpt.read_json(latest, "state.json")["step"] == 3


def test_half_written_checkpoint_is_ignored(tmp_path):
    w = ckpt.CheckpointWriter(tmp_path, 5)
    w.begin()
    w.tensors("model", {"w": torch.zeros(1)})  # killed here: never committed
    assert ckpt.latest_checkpoint(tmp_path) is None


def test_rng_states_restore_every_generator():
    g = torch.Generator().manual_seed(3)
    torch.rand(2, generator=g)
    saved = ckpt.rng_tensors({"train": g})
    a, a_global = torch.rand(4, generator=g), torch.rand(4)
    ckpt.restore_rng(saved, {"train": g})
    assert torch.equal(torch.rand(4, generator=g), a)
    assert torch.equal(torch.rand(4), a_global)


def test_a_damaged_weight_file_is_a_one_line_error(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(64)}, str(tmp_path / "ema.safetensors"))
    data = (tmp_path / "ema.safetensors").read_bytes()
    (tmp_path / "ema.safetensors").write_bytes(data[:20])  # truncated, as by a full disk
    with pytest.raises(ValueError, match="ema.safetensors: not a readable safetensors file"):
        ckpt.read_tensors(tmp_path, "ema")
