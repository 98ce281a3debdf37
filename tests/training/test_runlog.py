import pytest

from flowmapsr.training.runlog import CSVLog, Progress, read_csv


def test_csv_header_is_fixed_and_truncate_drops_later_rows(tmp_path):
    log = CSVLog(tmp_path / "t.csv")
    for step in range(1, 6):
        log.write({"step": step, "loss": 1.0 / step, **({"extra": 1} if step == 3 else {})})
    rows = read_csv(tmp_path / "t.csv")
    assert [r["step"] for r in rows] == ["1", "2", "3", "4", "5"]
    assert list(rows[0]) == ["step", "loss"]  # a key first seen later does not shift columns
    again = CSVLog(tmp_path / "t.csv")  # reopened (resume): header read back
    again.truncate_after(3)
    again.write({"step": 4, "loss": 9.0})
    rows = read_csv(tmp_path / "t.csv")
    assert [(r["step"], r["loss"]) for r in rows][-2:] == [("3", "0.333333"), ("4", "9")]


@pytest.mark.parametrize("kind", ["tqdm", "rich", "none"])
def test_progress_kinds_run(kind):
    bar = Progress(kind, total=3, initial=1, desc="t")
    bar.update(1, {"loss": 0.5})
    bar.update(1, {"loss": 0.25})
    bar.close()
