"""Peak-RSS helpers."""

from __future__ import annotations

import mmap

from flowmapsr.metrics import memory

SIZE = 64 * 2**20


def _touched_map() -> mmap.mmap:
    """64 MB of fresh anonymous pages, each written once (so they are resident). An mmap, not a
    bytearray: malloc may hand back already-resident memory freed by earlier tests."""
    m = mmap.mmap(-1, SIZE)
    for off in range(0, SIZE, mmap.PAGESIZE):
        m[off] = 1
    return m


def test_peak_covers_a_big_allocation_and_resets():
    how = memory.reset_peak()
    assert isinstance(how, str) and how
    before = memory.peak_rss_mb()
    block = _touched_map()
    peak = memory.peak_rss_mb()
    assert peak >= before + 48
    block.close()
    if how.startswith("VmHWM"):  # resettable on Linux: the peak falls back after the reset
        memory.reset_peak()
        assert memory.peak_rss_mb() < peak - 32
