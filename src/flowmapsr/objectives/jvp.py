"""Forward-mode Jacobian-vector products through ``torch.func.jvp`` with a clear failure mode.

Some kernels have no forward-mode AD (fused SDPA flash / memory-efficient attention, flash-attn,
custom autograd Functions). Rather than returning a silently wrong tangent, the error is caught
and re-raised as :class:`ForwardADUnsupported` naming the cause and the fix.
"""

from __future__ import annotations

import torch


class ForwardADUnsupported(RuntimeError):
    """A module in the network cannot be differentiated in forward mode."""


_HINTS = (
    "forward AD",
    "forward-mode",
    "Trying to use forward AD",
    "jvp",
    "not implemented for",
    "NotImplementedError",
    "_fw_primal",
)


def jvp(fn, primals: tuple, tangents: tuple):
    """``(fn(*primals), J_fn(primals) · tangents)`` via ``torch.func.jvp``.

    Raises :class:`ForwardADUnsupported` when an operation inside ``fn`` has no forward-mode
    derivative (e.g. fused attention): use a JVP-safe attention processor, or the ``shortcut``
    objective, which needs no JVP.
    """
    try:
        return torch.func.jvp(fn, primals, tangents)
    except (RuntimeError, NotImplementedError) as err:
        msg = str(err)
        if any(h.lower() in msg.lower() for h in _HINTS):
            raise ForwardADUnsupported(
                "this network cannot be differentiated in forward mode (needed by the "
                f"lagrangian/eulerian objectives): {msg.splitlines()[0]} — switch attention to "
                "a JVP-safe processor (math SDPA / eager) or train with objective=shortcut"
            ) from err
        raise
