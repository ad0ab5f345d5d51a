"""Where a table's file is, checked with nothing heavy imported: ``hpo sweep`` and ``hpo
check-data`` give a missing or empty ``data.path`` its one-line error in about a second,
before pandas, pyarrow, scikit-learn or the sweep machinery load (hpo.data.files reads
the file afterwards and checks it again the same way)."""

from __future__ import annotations

from pathlib import Path

from hpo.errors import ConfigError, DataError

FILE_SOURCES = ("csv", "parquet")  # data sources that read one file at data.path


def is_uri(path: str) -> bool:
    """s3://, gs://, hdfs://, file://: a location pyarrow's filesystems open."""
    return "://" in path


def check_data_file(path: str | None, fmt: str) -> str:
    """``data.path`` for a ``fmt`` (csv / parquet) source: the file as a string (a URI is
    passed on unchecked: pyarrow's filesystems open it).

    Raises:
        ConfigError: no path given.
        DataError: nothing there, not a file, or an empty file.
    """
    if not path:
        raise ConfigError(
            f"config key `data.path`: data={fmt} needs a file; pass data.path=FILE "
            f"(and data.target=COLUMN)."
        )
    path = str(path)
    if is_uri(path):
        return path
    local = Path(path).expanduser()
    if not local.exists():
        raise DataError(
            f"config key `data.path`: no file at {local.resolve()}; check the path "
            "(relative paths start from the directory you run hpo in)."
        )
    if not local.is_file():
        raise DataError(f"config key `data.path`: {local.resolve()} is not a file.")
    if local.stat().st_size == 0:
        raise DataError(f"config key `data.path`: {local.resolve()} is empty (0 bytes).")
    return str(local)


def check_configured_file(cfg) -> None:
    """The config's data file, if its source reads one (``data=csv`` / ``data=parquet``)."""
    source = cfg.data.get("source")
    if source in FILE_SOURCES:
        check_data_file(cfg.data.get("path"), source)
