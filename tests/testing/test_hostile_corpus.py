"""The hostile-input corpus against its table in ``docs/hostile-input.md``, row by row.

The corpus (``flowmapsr.testing.hostile``) is built and run once per session with the random
model; each case is then one test, so a failure names the case and what differed. Regenerate the
table after a deliberate change: ``python -m flowmapsr.testing.hostile --write
docs/hostile-input.md``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from flowmapsr.testing import hostile

DOC = Path(__file__).resolve().parents[2] / "docs" / "hostile-input.md"
NAMES = [case.name for case in hostile.CASES]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    return hostile.run_corpus(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def table():
    return hostile.parse_table(DOC.read_text(encoding="utf-8"))


def test_the_table_and_the_corpus_name_the_same_cases(table):
    assert len(set(NAMES)) == len(NAMES), "two cases share a name"
    assert [n for n in NAMES if n not in table] == [], "cases missing from the table"
    assert [n for n in table if n not in NAMES] == [], "rows for cases the corpus lacks"


@pytest.mark.parametrize("name", NAMES)
def test_case_does_what_the_table_says(name, outcomes, table):
    outcome = outcomes[name]
    if outcome.skipped:
        pytest.skip(outcome.skipped)
    row = table.get(name)
    assert row is not None, f"{name} has no row in {DOC}"
    case = next(c for c in hostile.CASES if c.name == name)
    expected = hostile.row_for(case, outcome)  # the case's own message appeared, or none did
    assert (row.input, row.flags) == (expected.input, expected.flags), (
        "the row describes another case"
    )
    assert hostile.check_row(row, outcome) == []


def test_a_row_that_differs_from_the_run_is_reported(outcomes, table):
    """The check can fail: a wrong exit code, message or output is named."""
    name = "same-stem"
    row, outcome = table[name], outcomes[name]
    assert hostile.check_row(row, outcome) == []
    for change, word in (
        ({"exit": "1"}, "exit code 0"),
        ({"message": "`no such file`"}, "'no such file' not in stderr"),
        ({"message": hostile.NONE}, "documented no message"),
        ({"output": "no output"}, "output '`photo.jpg.png`"),
    ):
        problems = hostile.check_row(dataclasses.replace(row, **change), outcome)
        assert len(problems) == 1 and word in problems[0], (change, problems)
    moved = dataclasses.replace(outcome, changed_inputs=["photo.png"])
    assert hostile.check_row(row, moved) == ["changed inputs ['photo.png']"]


def test_the_document_round_trips(table):
    """What ``--write`` renders parses back to the same rows."""
    rows = [table[n] for n in NAMES]
    assert hostile.parse_table(hostile.render_document(rows)) == {r.case: r for r in rows}
