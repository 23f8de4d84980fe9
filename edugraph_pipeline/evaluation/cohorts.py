"""The two cohorts of the validation split: a fixed selection cohort (for choosing checkpoints and recipes) and the
final cohort the gate scores, never used for tuning (upstream's successor keeps them apart the same way).

A problem (question and solution view alike) belongs to one cohort, decided by a hash of its id alone, so the
assignment never moves when the split grows. A validation split of fewer than `MIN_PROBLEMS` problems has no
selection cohort (everything is final): a quarter of a handful of problems would choose nothing and leave the gate
fewer items; the record says so.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

SELECTION = "selection"
FINAL = "final"
COHORTS = (SELECTION, FINAL)
SELECTION_FRACTION = 0.25
MIN_PROBLEMS = 40
_SALT = "edugraph-selection-cohort-v1"


def _unit_hash(problem_id: str) -> float:
    return int.from_bytes(hashlib.sha256(f"{_SALT}:{problem_id}".encode()).digest()[:8], "big") / 2**64


@dataclass(frozen=True)
class Cohorts:
    assignment: tuple[str, ...]  # each row's cohort, in row order
    fraction: float
    note: str  # how the cohorts were made, for people reading the record

    def rows(self, cohort: str) -> list[int]:
        return [index for index, name in enumerate(self.assignment) if name == cohort]

    def to_json(self, problem_ids: Sequence[str]) -> dict:
        return {
            "fraction": self.fraction,
            "note": self.note,
            **{
                cohort: {"rows": len(self.rows(cohort)),
                         "problems": sorted({problem_ids[i] for i in self.rows(cohort)})}
                for cohort in COHORTS
            },
        }


def assign_cohorts(
    problem_ids: Sequence[str], fraction: float = SELECTION_FRACTION, min_problems: int = MIN_PROBLEMS
) -> Cohorts:
    """Each row's cohort; rows of one problem share it."""
    if not 0 <= fraction < 1:
        raise ValueError(f"selection fraction must be in [0, 1), got {fraction}")
    problems = sorted(set(problem_ids))
    if len(problems) < min_problems or fraction == 0:
        note = (f"no selection cohort: {len(problems)} validation problems, fewer than {min_problems}; "
                "the gate scores every row" if fraction else "no selection cohort (fraction 0)")
        return Cohorts(tuple(FINAL for _ in problem_ids), fraction, note)
    selected = {problem for problem in problems if _unit_hash(problem) < fraction}
    note = (f"{len(selected)} of {len(problems)} validation problems (hash of the problem id < {fraction}) choose "
            "checkpoints and recipes; the gate scores the other ones")
    return Cohorts(tuple(SELECTION if pid in selected else FINAL for pid in problem_ids), fraction, note)
