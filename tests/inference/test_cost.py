"""The cost meter: measured seconds per output megapixel, the ceiling and its messages."""

from __future__ import annotations

import pytest

from flowmapsr.inference.cost import Ceiling, CostMeter, CostRefused, Work, plan_work


def test_plan_work_counts_the_network_output_at_the_model_scale():
    w = plan_work(100, 50, 3, [2, 4, 8], steps=2)  # x3 runs at x4, then bicubic to x3
    assert w.out_size == (300, 150) and w.work_mp == pytest.approx(400 * 200 / 1e6)
    assert w.steps == 2 and w.out_mp == pytest.approx(0.045)


def test_the_rate_comes_from_samples_large_enough_to_measure():
    meter = CostMeter()
    assert meter.rate is None and meter.estimate(Work((10, 10), 1.0, 1)) is None
    meter.record(5.0, 0.01, 1)  # under MIN_SAMPLE_MP: per-call overhead, not used
    assert meter.rate is None
    meter.record(9.0, 1.0, 2)  # the first usable sample: the warm-up, not used
    assert meter.rate is None
    meter.record(3.0, 1.0, 2)
    meter.record(1.0, 0.5, 2)
    assert meter.rate == pytest.approx(4.0 / 3.0)  # 4 s over 1.5 MP × 2 NFE
    assert meter.estimate(Work((1000, 1000), 3.0, 1)) == pytest.approx(4.0)
    fixed = CostMeter(2.0)
    fixed.record(100.0, 1.0, 1)  # a known figure is not replaced by measurements
    assert fixed.rate == 2.0


def test_refusals_name_the_file_the_estimate_and_the_flag():
    meter = CostMeter(1.5)
    work = Work((2000, 3000), 6.0, 2)  # 18 s
    assert meter.refusal("a.png", work, Ceiling(max_megapixels=10, max_seconds=20)) is None
    by_time = meter.refusal("a.png", work, Ceiling(max_megapixels=10, max_seconds=17))
    assert by_time.startswith("a.png: estimated 18 s for the 3000×2000 output")
    assert "3 s/MP at 2 step(s)" in by_time and "(raise it with --max-seconds)" in by_time
    by_size = meter.refusal("a.png", work, Ceiling(max_megapixels=5, megapixels_flag="--mp"))
    assert "output 3000×2000 = 6.0 MP exceeds the limit of 5 MP; estimated 18 s" in by_size
    assert by_size.endswith("(raise it with --mp)")
    assert meter.refusal("a.png", work, Ceiling(None, None)) is None
    # unmeasured: no time refusal, the megapixel limit still holds
    assert CostMeter().refusal("a.png", work, Ceiling(max_seconds=0.001)) is None


def test_watch_times_tiles_and_refuses_at_the_first_measured_one():
    now = [0.0]
    meter = CostMeter(clock=lambda: now[0], min_sample_mp=0.0)
    work = Work((100, 100), 4.0, 1)  # 4 tiles of 1 MP each
    seen = []
    watch = meter.watch("a.png", work, Ceiling(max_seconds=10), on_tile=lambda *a: seen.append(a))
    now[0] = 5.0  # first tile (warm-up): not used, so nothing is decided yet
    watch(1, 4)
    assert meter.rate is None and watch.estimate is None
    now[0] = 8.0  # second tile: 3 s per MP → 12 s estimated > 10 s
    with pytest.raises(CostRefused, match=r"a.png: estimated 12 s .* from its first 2 tile\(s\)"):
        watch(2, 4)
    assert seen == [(1, 4), (2, 4)] and meter.rate == pytest.approx(3.0)
    # the next image is estimated before it starts (9 s, fits) and never refused midway
    watch = meter.watch("b.png", Work((1, 1), 3.0, 1), Ceiling(max_seconds=10))
    assert watch.estimate == pytest.approx(9.0)
    now[0] = 13.0  # a slow tile: the estimate made before the image stands
    watch(1, 3)
    assert watch.estimate == pytest.approx(9.0)
