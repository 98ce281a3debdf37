"""Peak resident memory (RSS) of this process, resettable between bench methods.

On Linux, ``VmHWM`` in ``/proc/self/status`` is the RSS high-water mark and writing ``5`` to
``/proc/self/clear_refs`` resets it (Linux ≥ 4.0), so each method's peak is its own. Elsewhere
(or when the reset is refused) it falls back to ``resource.getrusage(...).ru_maxrss``, the
lifetime peak of the process, and says so: a later method then reports at least an earlier one's
peak. No psutil needed.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak() -> str:
    """Reset the high-water mark; returns how peaks are measured from now on (for reports)."""
    try:
        _CLEAR.write_text("5")
        if _status_kb("VmHWM") is not None:
            return "VmHWM from /proc/self/status, reset per method via /proc/self/clear_refs"
    except OSError:
        pass
    return "ru_maxrss (lifetime peak of the process: not reset between methods)"


def current_rss_mb() -> float | None:
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


def peak_rss_mb() -> float:
    """Peak RSS in MB since the last successful ``reset_peak`` (or process start)."""
    kb = _status_kb("VmHWM")
    if kb is not None:
        return kb / 1024.0
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024.0 * 1024.0) if sys.platform == "darwin" else maxrss / 1024.0
