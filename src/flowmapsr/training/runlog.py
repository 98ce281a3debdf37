"""Run logs: CSV files (one row per logged step), TensorBoard, and a progress bar.

CSV is the source of truth for plots and tests: ``train.csv`` and ``val.csv`` in the output
folder. On resume, rows past the resumed step are dropped (a killed run may have logged steps
whose checkpoint never landed), so the file always describes one continuous run.
TensorBoard is optional (``tensorboard: false`` or the package missing just skips it).
"""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path


class CSVLog:
    """Appends dict rows to a CSV; the header is fixed by the first row written.

    Later rows may carry new keys only if ``fields`` listed them; unknown keys are dropped and
    missing ones left blank, so columns never shift.
    """

    def __init__(self, path: str | Path, fields: list[str] | None = None):
        self.path = Path(path)
        self.fields = fields
        if self.path.is_file():
            with open(self.path, newline="", encoding="utf-8") as f:
                header = next(csv.reader(f), None)
            if header:
                self.fields = header

    def truncate_after(self, step: int) -> None:
        """Drop rows whose ``step`` is greater than ``step`` (rewritten atomically)."""
        if not self.path.is_file():
            return
        with open(self.path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        keep = [r for r in rows if r.get("step") and int(float(r["step"])) <= step]
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore", restval="")
            w.writeheader()
            w.writerows(keep)
        os.replace(tmp, self.path)

    def write(self, row: dict) -> None:
        new = not self.path.is_file()
        if self.fields is None:
            self.fields = list(row)
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore", restval="")
            if new:
                w.writeheader()
            w.writerow({k: _fmt(v) for k, v in row.items()})


def _fmt(v):
    return f"{v:.6g}" if isinstance(v, float) else v


def read_csv(path: str | Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


class TensorBoardLog:
    def __init__(self, folder: str | Path, enabled: bool = True):
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                print(
                    "flowmapsr train: tensorboard not installed; TensorBoard logs skipped",
                    file=sys.stderr,
                )
            else:
                self.writer = SummaryWriter(str(folder))

    def scalars(self, row: dict, step: int, prefix: str) -> None:
        if self.writer is None:
            return
        for k, v in row.items():
            if isinstance(v, (int, float)) and k != "step":
                self.writer.add_scalar(f"{prefix}/{k}", v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class Progress:
    """A tqdm or rich progress bar showing loss, it/s and ETA (``kind='none'``: silent)."""

    def __init__(self, kind: str, total: int, initial: int, desc: str, enabled: bool = True):
        self.kind = kind if enabled else "none"
        self.bar = None
        self._rich = None
        if self.kind == "tqdm":
            from tqdm.auto import tqdm

            # Not a terminal (nohup, CI): print a line every 30 s instead of redrawing.
            self.bar = tqdm(
                total=total,
                initial=initial,
                desc=desc,
                dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 30.0,
            )
        elif self.kind == "rich":
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeRemainingColumn,
            )
            from rich.progress import (
                Progress as RichProgress,
            )

            self._rich = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"),
                TimeRemainingColumn(),
            )
            self._rich.start()
            self.bar = self._rich.add_task(desc, total=total, completed=initial, info="")
        self._t0, self._n0 = time.perf_counter(), initial

    def update(self, n: int, info: dict) -> None:
        text = " ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items()
        )
        if self.kind == "tqdm":
            self.bar.set_postfix_str(text, refresh=False)
            self.bar.update(n)
        elif self.kind == "rich":
            done = self._rich.tasks[0].completed + n
            rate = (done - self._n0) / max(time.perf_counter() - self._t0, 1e-9)
            self._rich.update(self.bar, advance=n, info=f"{text} {rate:.2f} it/s")

    def close(self) -> None:
        if self.kind == "tqdm":
            self.bar.close()
        elif self.kind == "rich":
            self._rich.stop()
