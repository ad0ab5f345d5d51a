"""`hpo resume` verifies before it trusts: three records of one sweep, checked each against
the others before anything runs.

* ``trials.jsonl``: hpo's own record of every reported row (hpo.sweep.recorder);
* Ray Tune's experiment state (``tune/experiment_state-*.json``, read through the public
  ``tune.ExperimentAnalysis``): every trial Tune created, its status and last result,
  with the searcher's state of the same snapshot (``search_gen_state-*.json``,
  ``searcher-state-*.pkl``), without which Tune would create no more trials, or count
  them from an older snapshot;
* the Optuna study (``optuna_journal.log``): every trial's outcome (``hpo_status``) and
  the metric at every epoch (its intermediate values).

A row that trials.jsonl lost (the file cut, deleted, or a line in the middle broken) is
rebuilt from the other two: the metric of each epoch from the study, the last epoch's
whole result from Tune, the end and status from the study (else Tune). The file is then
rewritten (the damaged one kept beside it as ``trials.jsonl.damaged``) with each rebuilt
row where it belongs, marked ``"rebuilt": SOURCE``. A missing or unreadable Tune state
cannot be rebuilt from hpo's files: it is one HPOError naming the file, the cause and
what it holds. Nothing is left that would let a resume exit 0 with fewer trials than
had finished.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from hpo.errors import HPOError
from hpo.sweep.optuna_bridge import JOURNAL_FILE, STATUS_ATTR, TUNE_ID_ATTR, load_run_study
from hpo.sweep.recorder import STATUS_COMPLETED, STATUS_FAILED, STATUS_STOPPED, recorded_fields
from hpo.sweep.results import ROWS_FILE
from hpo.sweep.storage import RunLocation
from hpo.sweep.tune_state import DAMAGED_SUFFIX, TrialFacts, cause, tune_facts

ENDED = (STATUS_COMPLETED, STATUS_STOPPED, STATUS_FAILED)


@dataclass
class Verification:
    """What resume checked, and what it rebuilt (printed by ``hpo resume``)."""

    verified: list[str] = field(default_factory=list)
    rebuilt: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"hpo: verified {v}" for v in self.verified] + [
            f"hpo: rebuilt {r}" for r in self.rebuilt
        ]


def read_rows(path: Path) -> tuple[list[dict], list[str]]:
    """trials.jsonl's rows that parse, and what was wrong with the rest."""
    if not path.exists():
        return [], [f"{path.name} is missing"]
    text = path.read_text(errors="replace")
    rows, problems = [], []
    lines = text.split("\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "trial_id" not in row or "event" not in row:
                raise ValueError("not a row")
            rows.append(row)
        except ValueError:
            cut = number == len(lines)  # the last line, without its newline
            problems.append(f"line {number} {'was cut' if cut else 'is not a JSON row'}")
    return rows, problems


def row_facts(rows: list[dict], metric: str) -> dict[str, TrialFacts]:
    facts: dict[str, TrialFacts] = {}
    for row in rows:
        fact = facts.setdefault(row["trial_id"], TrialFacts(row["trial_id"]))
        fact.index = row.get("trial_index", fact.index)
        fact.params = row.get("params") or fact.params
        if row["event"] == "result" and row.get("epoch") is not None:
            fact.values.setdefault(int(row["epoch"]), row.get(metric))
        elif row["event"] == "end":
            fact.status, fact.error = row.get("status"), row.get("error")
    return facts


def study_facts(journal: Path) -> dict[str, TrialFacts]:
    """The study's trials by Tune trial id (orphans, which never ran in Tune, left out)."""
    if not journal.is_file():
        return {}
    try:
        study = load_run_study(journal)
    except Exception as exc:  # a damaged journal
        raise HPOError(
            f"{journal} is damaged ({cause(exc)}): the searcher's history "
            "cannot be read; restore it from a copy of the run directory."
        ) from exc
    facts = {}
    for trial in study.get_trials(deepcopy=False):
        trial_id = trial.user_attrs.get(TUNE_ID_ATTR)
        status = trial.user_attrs.get(STATUS_ATTR)
        if trial_id is None or status == "orphan":
            continue
        facts[trial_id] = TrialFacts(
            trial_id,
            trial.number + 1,
            dict(trial.params),
            status if status in ENDED else None,
            "failed (the reason was in the lost rows of trials.jsonl)"
            if status == STATUS_FAILED
            else None,
            {int(step): float(v) for step, v in trial.intermediate_values.items()},
        )
    return facts


def rebuilt_rows(
    trial_id: str, have: TrialFacts | None, tune: TrialFacts | None, study: TrialFacts | None,
    metric: str, keep=(),
) -> list[dict]:  # fmt: skip
    """The rows of ``trial_id`` that trials.jsonl lacks, from Tune's state and the study."""
    known = [f for f in (have, tune, study) if f is not None]
    index = next((f.index for f in known if f.index >= 0), -1)
    if tune is not None:
        index = tune.index
    params = next((f.params for f in known if f.params), {})
    base = {"trial_id": trial_id, "trial_index": index, "params": params}
    rows = []
    if have is None:
        source = "tune" if tune is not None else JOURNAL_FILE
        rows.append({"event": "start", **base, "rebuilt": source})
    recorded = set(have.values) if have else set()
    values = {**(study.values if study else {})}
    last = tune.last if tune and tune.last else None
    if last is not None and last.get("epoch") is not None:
        values.setdefault(int(last["epoch"]), last.get(metric))
    for epoch in sorted(set(values) - recorded):
        row = {"event": "result", **base, "epoch": epoch, metric: values[epoch]}
        source = JOURNAL_FILE
        if last is not None and last.get("epoch") == epoch:
            row.update(recorded_fields(last, keep))
            source = "tune" if study is None else f"{JOURNAL_FILE}+tune"
        rows.append({**row, "rebuilt": source})
    status = (study.status if study else None) or (tune.status if tune else None)
    if (have is None or have.status is None) and status is not None:
        error = (tune.error if tune and tune.error else None) or (study.error if study else None)
        source = JOURNAL_FILE if study and study.status else "tune"
        rows.append({"event": "end", **base, "status": status, "error": error, "rebuilt": source})
    return rows


def place(rows: list[dict], extra: list[dict]) -> list[dict]:
    """``rows`` with each rebuilt row among its trial's rows, in order (a start first,
    results by epoch, the end last); a trial with no rows left goes at the end."""
    out = list(rows)
    rank = {"start": -1.0, "end": math.inf}  # results (and retries) by their epoch

    def position(row: dict) -> float:
        return rank.get(row["event"], float(row.get("epoch") or 0))

    for row in extra:
        own = [i for i, r in enumerate(out) if r["trial_id"] == row["trial_id"]]
        before = [i for i in own if position(out[i]) <= position(row)]
        out.insert(before[-1] + 1 if before else own[0] if own else len(out), row)
    return out


def write_rows(path: Path, rows: list[dict]) -> None:
    """Replace trials.jsonl (the old one kept as ``trials.jsonl.damaged``), atomically."""
    if path.exists():
        os.replace(path, path.with_name(path.name + DAMAGED_SUFFIX))
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(json.dumps(row) + "\n" for row in rows))
    os.replace(temporary, path)


def verify_run(
    location: RunLocation, metric: str, keep=(), study_expected: bool = True
) -> Verification:
    """Check trials.jsonl, Tune's experiment state and the study against each other;
    rebuild trials.jsonl's lost rows from the other two.

    Args:
        location: the run directory.
        metric: the config's ``metric`` (the study's values are its values).
        keep: metric names of the trials' own (as TrialRecorder keeps them).
        study_expected: the run's searcher keeps a study (not PBT's, not the stock bridge).

    Raises:
        HPOError: one line naming the missing or damaged file, and what it held.
    """
    report = Verification()
    path = location.local / ROWS_FILE
    rows, problems = read_rows(path)
    have = row_facts(rows, metric)
    study = study_facts(location.local / JOURNAL_FILE)
    ended_elsewhere = {t for t, f in study.items() if f.status}
    ended_rows = {t for t, f in have.items() if f.status}
    tune = tune_facts(location, metric, len(ended_rows | ended_elsewhere))
    if study_expected and not (location.local / JOURNAL_FILE).is_file() and tune:
        raise HPOError(
            f"{location.local / JOURNAL_FILE} is missing: the Optuna study of the "
            f"{len(tune)} trials Ray Tune knows is lost, and the searcher would start "
            "over; restore it from a copy of the run directory."
        )
    report.verified.append(
        f"Ray Tune's experiment state and searcher state ({len(tune)} trials), the study "
        f"({len(study)} trials) and {ROWS_FILE} ({len(have)} trials, {len(ended_rows)} ended)"
    )
    extra = []
    for trial_id in sorted(set(tune) | set(study), key=lambda t: (tune.get(t) or study[t]).index):
        extra += rebuilt_rows(trial_id, have.get(trial_id), tune.get(trial_id),
                              study.get(trial_id), metric, keep)  # fmt: skip
    repaired = place(rows, extra)
    lost = (set(ended_elsewhere) | {t for t, f in tune.items() if f.status}) - {
        r["trial_id"] for r in repaired if r["event"] == "end"
    }
    if lost:  # (every end known elsewhere is rebuilt: this guards the guarantee)
        raise HPOError(
            f"{path}: the ends of {len(lost)} finished trials ({', '.join(sorted(lost))}) are "
            "lost and could not be rebuilt; restore the file from a copy of the run directory."
        )
    if problems or extra:
        existed = path.exists()
        write_rows(path, repaired)
        what = "; ".join(problems) or "rows were missing"
        trials = {r["trial_id"] for r in extra}
        ends = sum(r["event"] == "end" for r in extra)
        report.rebuilt.append(
            f"{ROWS_FILE} ({what}): {len(extra)} rows of {len(trials)} trials ({ends} trial "
            "ends) from the study and Ray Tune's state"
            + (f"; the old file is kept as {ROWS_FILE}{DAMAGED_SUFFIX}" if existed else "")
        )
    lagging = sorted(t for t in ended_rows if t in tune and tune[t].status is None)
    if lagging:  # their end came after Tune's last snapshot: they run on, the first end kept
        report.verified.append(
            f"{len(lagging)} trials ended in {ROWS_FILE} after Tune's last snapshot "
            f"({', '.join(lagging)}): Tune runs them on from their last checkpoint; their "
            "recorded end is the one kept"
        )
    unknown = sorted(t for t in have if t not in tune)
    if unknown:  # started after Tune's last snapshot (a SIGKILL): Tune will not resume them
        report.verified.append(
            f"{len(unknown)} trials of {ROWS_FILE} are not in Tune's last snapshot "
            f"({', '.join(unknown)}): kept as recorded, not resumed"
        )
    return report
