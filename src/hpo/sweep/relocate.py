"""A run directory that was moved or copied resumes in its new place.

Ray Tune restores the trials it knew with the storage it is given now (their checkpoints
included), but its search algorithm's saved state (``tune/search_gen_state-*.json``)
holds the Experiment of the first run, whose storage names the old path: every trial
created after the resume would be written there, and fail if it is gone. ``Relocating``
is Tune's public ``SearchGenerator`` with one change: on restore, the saved Experiment's
storage is replaced by one for this run's ``storage_path`` (built by the public
``tune.Experiment``), so new trials go where the old ones now are.

It also reads its saved state from the run directory's own ``tune/`` folder (a local
one), not from Tune's driver staging folder, which is named after the first run's start
time and shared by every copy of a run directory resumed in one Ray session: a copy
resumed after another would get the other's newer snapshot.
"""

from __future__ import annotations

from typing import Any

from ray.tune import Experiment
from ray.tune.search import ConcurrencyLimiter, Searcher, SearchGenerator


class Relocating(SearchGenerator):
    """``SearchGenerator`` whose restored Experiment writes under ``storage_path``.

    Args:
        searcher: the Searcher (already limited to the concurrency cap, if any).
        storage_path: ``storage_path`` of this run (the run directory where it is now).
        name: the experiment folder's name under it.
    """

    def __init__(self, searcher: Searcher, storage_path: str, name: str) -> None:
        super().__init__(searcher)
        self.storage_path, self.name = storage_path, name

    def _saved_in(self, dirpath: str) -> str:
        """The run's own experiment folder when it is local, else Tune's staging copy."""
        return dirpath if "://" in self.storage_path else f"{self.storage_path}/{self.name}"

    def has_checkpoint(self, dirpath: str) -> bool:
        return super().has_checkpoint(self._saved_in(dirpath))

    def restore_from_dir(self, dirpath: str) -> None:
        super().restore_from_dir(self._saved_in(dirpath))

    def set_state(self, state: dict[str, Any]) -> None:
        experiment = state.get("experiment")
        if experiment is not None:
            here = Experiment(self.name, experiment.run_identifier, storage_path=self.storage_path)
            experiment.storage = here.storage
            experiment.spec["storage"] = here.storage
        super().set_state(state)


def relocating(search_alg: Any, storage_path: str, name: str, max_concurrent: int | None) -> Any:
    """``search_alg`` as ``tune.run`` would wrap it (concurrency cap, SearchGenerator),
    made relocatable; a SearchAlgorithm of Tune's own (PBT's random sampling) as is."""
    if not isinstance(search_alg, Searcher):
        return search_alg
    if max_concurrent:
        search_alg = ConcurrencyLimiter(search_alg, max_concurrent=max_concurrent)
    return Relocating(search_alg, storage_path, name)
