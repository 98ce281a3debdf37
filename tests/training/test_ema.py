from __future__ import annotations

import torch

from flowmapsr.training.ema import EMA


def test_ema_tracks_with_warmup_and_decay():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, decay=0.9, warmup=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
        ema.shadow.weight.fill_(0.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow.weight, torch.full((2, 2), 0.1))
    assert not ema.shadow.weight.requires_grad
    warm = EMA(model, decay=0.999, warmup=True)
    assert warm.current_decay() == 0.1  # (1 + 0) / (10 + 0)
    x = torch.randn(3, 2)
    torch.testing.assert_close(warm(x), model(x))
