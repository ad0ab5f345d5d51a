"""CSV and Parquet files, read through pyarrow so columns come typed (not all strings).

``read_frame`` reads any such file into pandas (training and ``hpo predict`` both use it);
``load_file`` turns the configured file into a Table: the target split off and the feature
columns chosen by ``data.columns`` / ``data.drop_columns``.
"""

from __future__ import annotations

import codecs
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from hpo.data.locations import check_data_file, is_uri
from hpo.errors import ConfigError, DataError

if TYPE_CHECKING:
    from hpo.data.sources import Table

FORMATS = ("csv", "parquet")
LISTED_COLUMNS = 30  # how many column names an error message lists
OTHER_DELIMITERS = (";", "\t", "|")  # what a one-column header may really be split by


def read_frame(
    path: str,
    fmt: str,
    na_values: list[str] | tuple[str, ...] = (),
    columns: list[str] | None = None,
    delimiter: str = ",",
    string_columns: list[str] | tuple[str, ...] = (),
    skip_rows: int = 0,
    encoding: str = "utf-8",
) -> pd.DataFrame:
    """Read a CSV or Parquet file into pandas with pyarrow's typed columns.

    Args:
        path: a local path or a URI pyarrow can open (s3://...).
        fmt: ``csv`` or ``parquet``.
        na_values: CSV cells that mean "missing" (Parquet nulls are already typed).
        columns: read only these (Parquet: only these leave the disk).
        delimiter: the CSV field separator.
        string_columns: CSV columns to read as text whatever they look like (the
            categorical columns of a trained model, so ``7`` stays the category ``"7"``).
        skip_rows: CSV lines before the header (a title, a comment).
        encoding: the CSV's text encoding (a Python codec name).

    Raises:
        DataError: the file cannot be read, is not in ``encoding``, or has two columns
            of one name.
    """
    path = check_data_file(path, fmt)
    try:
        if fmt == "parquet":
            table = pq.read_table(path, columns=columns)
        elif fmt == "csv":
            convert = pa_csv.ConvertOptions(
                null_values=list(na_values),
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                include_columns=columns or [],
                column_types={c: pa.string() for c in string_columns},
            )
            table = pa_csv.read_csv(
                path,
                read_options=pa_csv.ReadOptions(skip_rows=skip_rows, encoding=encoding),
                parse_options=pa_csv.ParseOptions(delimiter=delimiter),
                convert_options=convert,
            )
        else:
            raise ConfigError(
                f"config key `data.source`: unknown file format {fmt!r}; use csv or parquet."
            )
    except (pa.ArrowException, OSError) as exc:
        message = " ".join(str(exc).split())
        hint = (
            "check the file is a CSV with a header row (set data.delimiter if it is not ',', "
            "data.skip_rows if lines come before the header), or use data=parquet for Parquet"
            if fmt == "csv"
            else "check the file is Parquet, or use data=csv for a CSV file"
        )
        raise DataError(f"cannot read {path} as {fmt}: {message}; {hint}.") from exc
    try:
        names = table.schema.names
    except UnicodeDecodeError as exc:  # a column name that is not UTF-8 (Arrow's names are)
        raise _not_in_encoding(path, encoding, "the header", exc.object[exc.start]) from None
    if fmt == "csv":
        _check_text_columns(table, path, encoding)
    check_unique_columns(names, path)
    # self_destruct frees each Arrow column as it is converted: peak memory stays near
    # one copy of the data instead of two.
    return table.to_pandas(split_blocks=True, self_destruct=True)


def _not_in_encoding(path: str, encoding: str, where: str, byte: int) -> DataError:
    other = "latin-1" if codecs.lookup(encoding).name != "iso8859-1" else "cp1252"
    return DataError(
        f"cannot read {path} as {encoding} text: {where} holds the byte 0x{byte:02x}, which "
        f"is not {encoding}; the file was probably saved in another encoding (Excel and "
        f"older exports often write latin-1 or cp1252): pass data.file_encoding={other} "
        "(any Python codec name)."
    )


def _check_text_columns(table: pa.Table, path: str, encoding: str) -> None:
    """pyarrow types a CSV column that is not valid text as binary: name it."""
    for field in table.schema:
        if pa.types.is_binary(field.type) or pa.types.is_large_binary(field.type):
            for value in table.column(field.name).to_pylist():
                try:
                    (value or b"").decode(encoding)
                except UnicodeDecodeError as exc:
                    byte = value[exc.start]
                    raise _not_in_encoding(path, encoding, f"column `{field.name}`", byte) from None


def check_unique_columns(names: list[str], path: str) -> None:
    """Two columns of one name would make every later step ambiguous."""
    repeated = [n for n, k in Counter(str(n) for n in names).items() if k > 1]
    if repeated:
        where = "; ".join(
            f"`{n}` at columns {', '.join(str(i + 1) for i, m in enumerate(names) if str(m) == n)}"
            for n in repeated
        )
        raise DataError(
            f"{path} has several columns of one name ({where}); rename them in the file's "
            "header so that every column name is unique."
        )


def _parquet_columns(path: str) -> list[str]:
    try:
        names = list(pq.read_schema(path).names)
    except (pa.ArrowException, OSError) as exc:
        message = " ".join(str(exc).split())
        raise DataError(
            f"cannot read {path} as parquet: {message}; check the file is Parquet, or use "
            "data=csv for a CSV file."
        ) from exc
    check_unique_columns(names, path)
    return names


def listed(names) -> str:
    names = [str(n) for n in names]
    shown = ", ".join(names[:LISTED_COLUMNS])
    return shown + (f", ... ({len(names)} in all)" if len(names) > LISTED_COLUMNS else "")


def wanted_columns(available: list[str], data_cfg, target: str | None = None) -> list[str]:
    """The columns to load: target, group column and the chosen features, in file order."""
    target = target or data_cfg.target
    if not target:
        raise ConfigError(
            f"config key `data.target`: name the column to predict with data.target=COLUMN; "
            f"the file's columns are: {listed(available)}."
        )
    if target not in available:
        raise DataError(
            f"config key `data.target`: no column `{target}` in the file; its columns are: "
            f"{listed(available)}{_delimiter_hint(available, data_cfg)}."
        )
    chosen = list(data_cfg.columns) if data_cfg.columns else None
    named = {
        "data.columns": chosen or [],
        "data.drop_columns": list(data_cfg.drop_columns or []),
        "data.group_column": [data_cfg.group_column] if data_cfg.group_column else [],
    }
    for key, names in named.items():
        unknown = [n for n in names if n not in available]
        if unknown:
            raise DataError(
                f"config key `{key}`: no column {listed(f'`{n}`' for n in unknown)} in the "
                "data; its columns "
                f"are: {listed(available)}."
            )
    keep = set(chosen) if chosen is not None else set(available)
    keep -= set(named["data.drop_columns"])
    keep |= {target, *named["data.group_column"]}
    return [c for c in available if c in keep]


def _delimiter_hint(available: list[str], data_cfg) -> str:
    """A header read as one column, holding another separator: say which to pass."""
    if len(available) != 1:
        return ""
    found = [d for d in OTHER_DELIMITERS if d in available[0]]
    if not found:
        return ""
    quoted = "tab" if found[0] == "\t" else f"'{found[0]}'"
    current = csv_delimiter(data_cfg)
    return (
        f"; the header was read as one column with data.delimiter={current!r}, but it holds "
        f'{found[0]!r}: pass "data.delimiter={quoted}" (quoted, as Hydra needs)'
    )


def csv_delimiter(data_cfg) -> str:
    """``data.delimiter``; ``tab`` or ``\\t`` (what Hydra keeps of '\\t') mean a tab."""
    delimiter = getattr(data_cfg, "delimiter", None) or ","
    return "\t" if delimiter in ("tab", "\\t") else delimiter


def file_encoding(data_cfg) -> str:
    """``data.file_encoding``, checked to be a codec Python knows."""
    encoding = getattr(data_cfg, "file_encoding", None) or "utf-8"
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise ConfigError(
            f"config key `data.file_encoding`: {encoding!r} is not a text encoding Python "
            "knows; use e.g. utf-8, latin-1 or cp1252."
        ) from None
    return encoding


def load_file(data_cfg) -> Table:
    """The configured CSV or Parquet file as a Table (raw values; cleaning comes later)."""
    # Here, not at the top: hpo predict reads files through read_frame, and
    # hpo.data.sources imports scikit-learn's datasets.
    from hpo.data.sources import Table

    fmt = data_cfg.source
    path = check_data_file(data_cfg.path, fmt)
    na_values = list(data_cfg.na_values or [])
    delimiter = csv_delimiter(data_cfg)
    if fmt == "parquet":
        columns = wanted_columns(_parquet_columns(path), data_cfg)
        frame = read_frame(path, fmt, na_values, columns=columns)
    else:
        skip_rows = int(getattr(data_cfg, "skip_rows", 0) or 0)
        frame = read_frame(
            path,
            fmt,
            na_values,
            delimiter=delimiter,
            skip_rows=skip_rows,
            encoding=file_encoding(data_cfg),
        )
        frame.columns = [str(c) for c in frame.columns]
        frame = frame[wanted_columns(list(frame.columns), data_cfg)]
    if len(frame) == 0:
        raise DataError(f"config key `data.path`: {path} has a header but no rows.")
    target = frame.pop(data_cfg.target)
    name = Path(path).stem if not is_uri(path) else path.rsplit("/", 1)[-1]
    return Table(features=frame, target=target, name=name)
