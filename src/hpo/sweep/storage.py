"""Where a run directory lives: a path (local, or shared by every node of a cluster), or a
URI (``s3://``, ``gs://``, ``abfss://``, ``file://``, ...) written through pyarrow's
filesystems.

Ray Tune writes its experiment folder (``tune/``: checkpoints, searcher and scheduler
state) straight to the run directory, URI or not. The driver's own files (config.yaml,
trials.jsonl, trials.parquet, best_trial.json) are written to a local directory: the run
directory itself, or for a URI a staging copy that is uploaded after every finished
trial and at the end, and downloaded again by ``hpo resume``.
"""

from __future__ import annotations

import datetime as _dt
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs
from omegaconf import DictConfig

from hpo.errors import ConfigError, HPOError
from hpo.paths import os_errors, writable_dir
from hpo.rundir import TUNE as TUNE_DIR
from hpo.rundir import TUNER_STATE
from hpo.sweep.lock import claim_run_dir


def is_uri(path: str | Path) -> bool:
    return "://" in str(path)


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for unknown schemes
        raise ConfigError(
            f"config key `output_dir`: pyarrow cannot open {uri!r} ({exc}); use a path, or a "
            "URI of a filesystem pyarrow supports (s3://, gs://, abfss://, hdfs://, file://)."
        ) from exc


def _exists(fs: pafs.FileSystem, path: str) -> bool:
    return fs.get_file_info(path).type != pafs.FileType.NotFound


@dataclass
class RunLocation:
    """A run directory: ``local`` is what this process writes; ``uri`` the remote copy.

    For a path, ``local`` is the run directory itself and ``uri`` is None.
    """

    local: Path
    uri: str | None = None

    @property
    def display(self) -> str:
        """The run directory as the user names it (for messages and `hpo resume`)."""
        return self.uri or str(self.local)

    @property
    def tune_storage(self) -> str:
        """``RunConfig.storage_path``: Tune's experiment folder goes under it."""
        return self.uri or str(self.local)

    @property
    def tune_path(self) -> str:
        """Tune's experiment folder, as ``Tuner.restore`` wants it."""
        return f"{self.uri.rstrip('/')}/{TUNE_DIR}" if self.uri else str(self.local / TUNE_DIR)

    def has_tuner_state(self) -> bool:
        if self.uri:
            fs, base = _filesystem(self.uri)
            return _exists(fs, f"{base.rstrip('/')}/{TUNE_DIR}/{TUNER_STATE}")
        return (self.local / TUNE_DIR / TUNER_STATE).is_file()

    @classmethod
    def create(cls, cfg: DictConfig, run_dir: str | Path | None = None) -> RunLocation:
        """A new run directory: ``run_dir`` (argument, else the ``run_dir`` key), else
        ``output_dir/name/<time>``."""
        target = run_dir or cfg.get("run_dir")
        if target and is_uri(target):
            return cls._new_remote(str(target), exact=True)
        if target:
            path = writable_dir(target, "config key `run_dir`").resolve()
            lock = claim_run_dir(path, "hpo sweep")  # a running sweep is named first
            if (path / TUNE_DIR).exists():
                lock.release()
                raise ConfigError(
                    f"config key `run_dir`: {path} already holds a sweep; finish it with "
                    f"`hpo resume {path}` or choose another directory."
                )
            return cls(path)
        stamp = _dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
        if is_uri(cfg.output_dir):
            return cls._new_remote(f"{str(cfg.output_dir).rstrip('/')}/{cfg.name}/{stamp}")
        base = Path(cfg.output_dir).expanduser().resolve() / cfg.name / stamp
        writable_dir(base.parent, "config key `output_dir`")
        path, n = base, 1
        while True:  # mkdir is the test: two sweeps started in the same second differ
            try:
                with os_errors(path, "config key `output_dir`"):
                    path.mkdir()
                break
            except HPOError as exc:
                if not isinstance(exc.__cause__, FileExistsError):
                    raise
                path = base.with_name(f"{stamp}_{n}")
                n += 1
        claim_run_dir(path, "hpo sweep")
        return cls(path)

    @classmethod
    def _new_remote(cls, uri: str, exact: bool = False) -> RunLocation:
        """A run directory at a URI, with a local staging directory for the driver."""
        candidate, n = uri.rstrip("/"), 1
        fs, path = _filesystem(candidate)
        while _exists(fs, f"{path}/{TUNE_DIR}"):
            if exact:
                raise ConfigError(
                    f"config key `run_dir`: {uri} already holds a sweep; finish it with "
                    f"`hpo resume {uri}` or choose another directory."
                )
            candidate = f"{uri.rstrip('/')}_{n}"
            fs, path = _filesystem(candidate)
            n += 1
        fs.create_dir(path, recursive=True)
        return cls(Path(tempfile.mkdtemp(prefix="hpo-run-")), candidate)

    @classmethod
    def open(cls, run_dir: str | Path) -> RunLocation:
        """An existing run directory (for resume); a URI's files are downloaded first."""
        if not is_uri(run_dir):
            path = Path(run_dir).expanduser().resolve()
            if not path.is_dir():
                raise HPOError(
                    f"{path} is not a directory; pass the run directory that `hpo sweep` printed."
                )
            return cls(path)
        location = cls(Path(tempfile.mkdtemp(prefix="hpo-run-")), str(run_dir).rstrip("/"))
        fs, base = _filesystem(location.uri)
        if not _exists(fs, base):
            raise HPOError(f"{run_dir} does not exist; pass the run directory of a sweep.")
        for info in fs.get_file_info(pafs.FileSelector(base, recursive=False)):
            if info.type == pafs.FileType.File:
                pafs.copy_files(
                    info.path,
                    str(location.local / info.base_name),
                    source_filesystem=fs,
                    destination_filesystem=pafs.LocalFileSystem(),
                )
        return location

    def upload(self, name: str | None = None) -> None:
        """Copy the local files (all but ``tune/``, or just ``name``) to the URI."""
        if not self.uri:
            return
        fs, base = _filesystem(self.uri)
        children = [self.local / name] if name else sorted(self.local.iterdir())
        for child in children:
            if child.name == TUNE_DIR or not child.exists():
                continue
            if child.is_dir():  # copy_files wants the target folder to exist
                fs.create_dir(f"{base.rstrip('/')}/{child.name}", recursive=True)
            pafs.copy_files(
                str(child),
                f"{base.rstrip('/')}/{child.name}",
                source_filesystem=pafs.LocalFileSystem(),
                destination_filesystem=fs,
            )


CHECKPOINT_DIR = re.compile(r"^checkpoint_(\d{6})$")


def tune_filesystem(location: RunLocation) -> tuple[pafs.FileSystem, str]:
    """The filesystem and path of the run's Tune folder (``tune/``)."""
    if location.uri:
        return _filesystem(location.tune_path)
    return pafs.LocalFileSystem(), location.tune_path


def _file_names(fs: pafs.FileSystem, folder: str) -> set[str]:
    found = fs.get_file_info(pafs.FileSelector(folder, recursive=True, allow_not_found=True))
    return {
        info.path[len(folder) :].lstrip("/") for info in found if info.type == pafs.FileType.File
    }


def replace_missing_checkpoint(fs: pafs.FileSystem, wanted: str) -> bool:
    """Recreate checkpoint folder ``wanted`` from the trial's next newer one, if any:
    where it is gone, or lacks a file that one holds (Tune's deletion of it, file by
    file, cut short by a killed driver)."""
    trial_dir, name = wanted.rsplit("/", 1)
    index = int(CHECKPOINT_DIR.match(name).group(1))
    entries = fs.get_file_info(pafs.FileSelector(trial_dir, allow_not_found=True))
    newer = sorted(
        int(match.group(1))
        for info in entries
        if info.type == pafs.FileType.Directory
        and (match := CHECKPOINT_DIR.match(info.base_name))
        and int(match.group(1)) > index
    )
    if not newer:
        return False
    source = f"{trial_dir}/checkpoint_{newer[0]:06d}"
    if any(info.base_name == name for info in entries):  # there, but maybe not whole
        if _file_names(fs, source) <= _file_names(fs, wanted):
            return False  # whole
        fs.delete_dir(wanted)
    fs.create_dir(wanted, recursive=True)  # copy_files wants the folder to exist
    pafs.copy_files(
        source,
        wanted,
        source_filesystem=fs,
        destination_filesystem=fs,
    )
    return True


def upload_results(run_dir: str | Path, storage: str) -> None:
    """Copy what was written into a run's local directory after the sweep (e.g. the
    exported best model) to its URI too; nothing to do for a plain path.

    Args:
        run_dir: ``SweepResult.run_dir``.
        storage: ``SweepResult.extra["storage"]``, the run directory as the user named it.
    """
    if is_uri(storage):
        RunLocation(Path(run_dir), storage).upload()
