"""The study's journal written in batches (hpo.sweep.journal): the study in this process
is current at once, the file after a flush, and a study reopened from the file then is
the same study."""

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from hpo.sweep.journal import BatchedJournal

SPACE = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}


def reopened(path) -> optuna.Study:
    return optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(path))))


def summary(study: optuna.Study) -> list:
    return [
        (t.number, t.state, t.params, t.user_attrs, t.intermediate_values, t.values)
        for t in study.get_trials(deepcopy=False)
    ]


def lines(path) -> int:
    return len(path.read_text().splitlines())


def test_changes_wait_in_memory_until_a_flush_writes_them_together(tmp_path):
    path = tmp_path / "journal.log"
    journal = BatchedJournal(path, flush_s=3600)
    study = optuna.create_study(study_name="s", storage=JournalStorage(journal))
    journal.flush()
    assert lines(path) == 1 and journal.waiting == 0  # the study's creation

    trial = study.ask(SPACE)
    trial.set_user_attr("tune_trial_id", "t0")
    for step in range(5):
        trial.report(0.1 * step, step)
    # the study here has it all; the file nothing of it yet
    assert len(study.trials) == 1 and study.trials[0].intermediate_values[4] == 0.4
    assert journal.waiting > 5 and lines(path) == 1
    assert reopened(path).trials == []
    assert not journal.flush_due()

    journal.flush()
    assert journal.waiting == 0 and lines(path) > 6
    assert summary(reopened(path)) == summary(study)

    # later changes follow the flushed ones: the study and the reopened file still agree
    study.tell(trial.number, 0.4)
    second = study.ask(SPACE)
    study.tell(second.number, state=TrialState.PRUNED)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    journal.flush()
    assert summary(reopened(path)) == summary(study)
    assert reopened(path).best_value == 0.4


def test_a_flush_falls_due_once_a_change_has_waited_flush_s(tmp_path):
    journal = BatchedJournal(tmp_path / "journal.log", flush_s=0.0)
    assert not journal.flush_due()  # nothing waits
    optuna.create_study(study_name="s", storage=JournalStorage(journal))
    assert journal.flush_due()
    journal.flush()
    assert not journal.flush_due()


def test_an_existing_journal_is_read_and_continued(tmp_path):
    path = tmp_path / "journal.log"
    plain = optuna.create_study(
        study_name="s", storage=JournalStorage(JournalFileBackend(str(path)))
    )
    plain.tell(plain.ask(SPACE), 0.2)

    before = lines(path)

    journal = BatchedJournal(path)
    study = optuna.load_study(study_name="s", storage=JournalStorage(journal))
    assert study.best_value == 0.2
    study.tell(study.ask(SPACE), 0.7)
    assert lines(path) == before and reopened(path).best_value == 0.2
    journal.flush()
    assert [t.value for t in reopened(path).trials] == [0.2, 0.7]


def test_the_searchers_journal_file_has_every_ask_and_tell_at_once(tmp_path):
    """hpo's searcher as Tune drives it (no Ray: its calls alone): a trial's ask and its
    tell are in the file as soon as the call returns; its epoch values wait (here: up to
    an hour) until the tell, or until Tune snapshots the searcher."""
    from hpo.sweep.optuna_bridge import JOURNAL_FILE, StudySearcher, load_run_study

    path = tmp_path / JOURNAL_FILE
    searcher = StudySearcher(
        {"optim.lr": SPACE["lr"]}, "val_loss", "min", optuna.samplers.RandomSampler(0), path
    )
    searcher.suggest("t0")
    searcher.backend.flush_s = 3600
    on_file = load_run_study(path).trials
    assert [(t.state, t.user_attrs["tune_trial_id"]) for t in on_file] == [
        (TrialState.RUNNING, "t0")
    ]

    for epoch in (1, 2, 3):
        searcher.on_trial_result("t0", {"val_loss": 1.0 / epoch, "epoch": epoch})
    assert searcher.study.trials[0].intermediate_values == {1: 1.0, 2: 0.5, 3: 1 / 3}
    assert load_run_study(path).trials[0].intermediate_values == {}

    searcher.save(str(tmp_path / "searcher_state.json"))  # Tune's experiment snapshot
    assert load_run_study(path).trials[0].intermediate_values == {1: 1.0, 2: 0.5, 3: 1 / 3}

    searcher.suggest("t1")
    searcher.on_trial_result("t1", {"val_loss": 0.9, "epoch": 1})
    searcher.on_trial_complete("t1", {"val_loss": 0.9, "epoch": 1, "trial_finished": True})
    searcher.on_trial_complete("t0", {"val_loss": 0.25, "epoch": 4, "trial_finished": True})
    on_file = load_run_study(path)
    assert summary(on_file) == summary(searcher.study)
    assert [t.value for t in on_file.trials] == [0.25, 0.9]
    assert searcher.backend.waiting == 0
