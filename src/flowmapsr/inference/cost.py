"""Bounded cost: a work estimate before each image and a ceiling on it (CLI and web page).

**The estimate** is the image's work in output megapixels — as the network computes them,
``h·s × w·s`` at the model scale ``s`` (:func:`plan_work`) — times the cost in seconds per
output megapixel per network evaluation (NFE), times the steps. The cost is **measured on this
machine during this run** (the CLI) or this server process (the web page), not read from a
figure stored with the model: it depends on the CPU or GPU, how many of its cores are free, the
precision, the tile size and overlap, so a number measured elsewhere (``flowmapsr bench`` on the
computer that trained the model) can be off several-fold either way. A caller that knows the
figure can pass it (``CostMeter(seconds_per_mp=...)``; the tests do, so that they time nothing).

**Where the measurement comes from**: the wall time of every tile, from
:func:`~flowmapsr.inference.api.upscale_picture`'s ``on_tile`` callbacks, against the tile's
share of the image's output megapixels (overlap included, so the figure is for the run's own
tiling). Samples under :data:`MIN_SAMPLE_MP` are not used: a fixed ~16 ms per network call makes
small tiles look dearer per megapixel than they are (measured with the built-in model, fp32, one
thread, x4: 5.21 s/MP at 0.004 MP, 1.81 at 0.066, 1.46 at 0.26, 1.44 at 1.05), and an
overestimate would refuse photos that fit. The first usable sample of a run is a warm-up and
not used either: it pays for building the merged LoRA copy and oneDNN's kernels (built-in model,
bf16, one thread, a 512×384 → 2048×1536 image in six 256-pixel tiles: 1.81 s for the first tile,
1.01–1.40 s for the others; in the CLI the first tile alone extrapolated to 15 s for an image
that took 7.3 s). Until a sample exists — the first large image of a run — that image starts,
and its estimate is extrapolated from its first tiles after the warm-up; when that is over the
ceiling the image is abandoned there, two tiles of work lost (``--tile 0`` has no tiles to
extrapolate from: the first untiled image is only bounded by ``max_megapixels``).

**The ceiling** (:class:`Ceiling`): output megapixels (the output array's memory, and the work a
user asked for) and estimated seconds per image. Over either, the image is refused with one
line naming the file, the estimate and the option that lifts the limit (:class:`CostRefused`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Timed work under this many output megapixels is not used for the cost (see the module doc).
MIN_SAMPLE_MP = 0.25
# Usable samples a meter drops first: the run's first tile carries one-time set-up costs.
WARMUP_SAMPLES = 1
# Output megapixels per image: a 30 MP photo at x4 (480 MP) fits; 500 MP is 1.5 GB as 8-bit RGB
# and 3 GB as 16-bit, in the output array the upscaler fills.
DEFAULT_MAX_MEGAPIXELS = 500.0
# Estimated seconds per image: a 24 MP photo at x4 (384 MP) takes ~550 s on one CPU thread at
# the 1.44 s/MP measured above, so 30 minutes refuses no ordinary photo on a slow machine.
DEFAULT_MAX_SECONDS = 1800.0


class CostRefused(ValueError):
    """An image over the cost ceiling; ``str(err)`` is the one-line message for the user."""


@dataclass(frozen=True)
class Ceiling:
    """Limits per image; None (or 0) means no limit. The flags name the options that lift them."""

    max_megapixels: float | None = DEFAULT_MAX_MEGAPIXELS
    max_seconds: float | None = DEFAULT_MAX_SECONDS
    megapixels_flag: str = "--max-megapixels"
    seconds_flag: str = "--max-seconds"


@dataclass(frozen=True)
class Work:
    """One image's planned work.

    out_size: ``(H, W)`` of the written output (``round(h·scale)``).
    work_mp: megapixels the network computes, ``h·s·w·s / 1e6`` at the model scale ``s``.
    steps: network evaluations per pixel.
    """

    out_size: tuple[int, int]
    work_mp: float
    steps: int

    @property
    def out_mp(self) -> float:
        return self.out_size[0] * self.out_size[1] / 1e6


def plan_work(h: int, w: int, scale: float, model_scales, steps: int) -> Work:
    """The :class:`Work` of upscaling an ``h × w`` input by ``scale`` with ``steps`` NFE."""
    from flowmapsr.inference.pipeline import model_scale_for, output_size

    ms = model_scale_for(scale, model_scales)
    return Work(output_size(h, w, scale), h * ms * w * ms / 1e6, int(steps))


class CostMeter:
    """Seconds per output megapixel per NFE, measured from timed tiles (thread-safe).

    ``seconds_per_mp``: a known figure to use instead of measuring (per NFE). ``clock``: the
    time source (seconds). ``min_sample_mp``: smaller samples are not used. ``warmup``: how many
    usable samples are dropped first.
    """

    def __init__(
        self,
        seconds_per_mp: float | None = None,
        *,
        clock: Callable[[], float] = time.perf_counter,
        min_sample_mp: float = MIN_SAMPLE_MP,
        warmup: int = WARMUP_SAMPLES,
    ):
        self.fixed = seconds_per_mp
        self.clock = clock
        self.min_sample_mp = min_sample_mp
        self.warmup = warmup  # usable samples still to drop
        self.seconds = 0.0  # timed seconds of the samples used
        self.mp_steps = 0.0  # their output megapixels × NFE
        self._lock = threading.Lock()

    @property
    def rate(self) -> float | None:
        """Seconds per output megapixel per NFE, or None before any usable sample."""
        if self.fixed is not None:
            return self.fixed
        with self._lock:
            return self.seconds / self.mp_steps if self.mp_steps else None

    def record(self, seconds: float, megapixels: float, steps: int) -> None:
        """Add a timed piece of work (ignored under ``min_sample_mp``, while warming up, or with
        a fixed figure)."""
        if self.fixed is not None or megapixels < self.min_sample_mp or seconds <= 0:
            return
        with self._lock:
            if self.warmup > 0:
                self.warmup -= 1
                return
            self.seconds += seconds
            self.mp_steps += megapixels * steps

    def estimate(self, work: Work) -> float | None:
        """Estimated seconds for ``work``, or None while the cost is unmeasured."""
        rate = self.rate
        return None if rate is None else work.work_mp * work.steps * rate

    def refusal(self, name: str, work: Work, ceiling: Ceiling, when: str = "") -> str | None:
        """The one-line refusal of ``work`` under ``ceiling``, or None when it fits."""
        est = self.estimate(work)
        h, w = work.out_size
        if ceiling.max_megapixels and work.out_mp > ceiling.max_megapixels:
            about = f"; estimated {est:.0f} s" if est is not None else ""
            return (
                f"{name}: output {w}×{h} = {work.out_mp:.1f} MP exceeds the limit of "
                f"{ceiling.max_megapixels:g} MP{about} (raise it with {ceiling.megapixels_flag})"
            )
        if ceiling.max_seconds and est is not None and est > ceiling.max_seconds:
            per_mp = self.rate * work.steps
            return (
                f"{name}: estimated {est:.0f} s for the {w}×{h} output ({work.work_mp:.1f} MP "
                f"× {per_mp:.3g} s/MP at {work.steps} step(s), measured on this machine{when}) "
                f"exceeds the limit of {ceiling.max_seconds:g} s (raise it with "
                f"{ceiling.seconds_flag})"
            )
        return None

    def watch(
        self,
        name: str,
        work: Work,
        ceiling: Ceiling,
        on_tile: Callable[[int, int], None] | None = None,
    ) -> TileWatch:
        """An ``on_tile(done, total)`` callback for upscaling ``work`` (see :class:`TileWatch`);
        make it right before the upscaling starts."""
        return TileWatch(self, name, work, ceiling, on_tile)


class TileWatch:
    """``on_tile(done, total)`` for one image: times each tile into ``meter`` and, when the image
    started without an estimate, raises :class:`CostRefused` as soon as the first tile the
    meter uses (after its warm-up) puts the estimate over ``ceiling``. ``on_tile`` (e.g. a
    progress bar) is called first.

    ``estimate``: the image's estimated seconds, made before it started or at that tile (None
    while unmeasured).
    """

    def __init__(self, meter: CostMeter, name: str, work: Work, ceiling: Ceiling, on_tile=None):
        self.meter, self.name, self.work, self.ceiling = meter, name, work, ceiling
        self.on_tile = on_tile
        self.estimate = meter.estimate(work)
        self._last, self._done = meter.clock(), 0

    def __call__(self, done: int, total: int) -> None:
        if self.on_tile is not None:
            self.on_tile(done, total)
        now = self.meter.clock()
        if done > self._done:
            mp = self.work.work_mp * (done - self._done) / total
            self.meter.record(now - self._last, mp, self.work.steps)
        self._last, self._done = now, done
        if self.estimate is None and self.meter.rate is not None:
            self.estimate = self.meter.estimate(self.work)  # decided once, at the first tile
            if done < total:
                when = f", from its first {done} tile(s)"
                why = self.meter.refusal(self.name, self.work, self.ceiling, when=when)
                if why:
                    raise CostRefused(why)
