"""Strict CSV parsing shared by submissions, solutions and probability CSVs, and exact integer columns.

pandas guesses: a row with one field more than the header silently turns its first field into an
index, and a trailing comma shifts every later line number. Here every line is checked against the
header, and every message gives the file line (line 1 is the first line of the file).

Integer columns (Ids, Categories, labels) are parsed exactly: ``3`` and ``3.0`` are 3, but a value
outside the signed 64-bit range (``2**63``, ``1e19``) is refused instead of wrapping around, and no
numpy warning is printed. Nothing here imports torch.
"""
from __future__ import annotations

import csv
import io
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import pandas as pd

from kfold.errors import DataError

__all__ = ["check_unique_ids", "exact_integer", "int64_array", "integer_column", "parse_csv", "read_csv_frame"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_PLAIN_INT = re.compile(r"^\s*[+-]?[0-9]{1,18}\s*$")  # ASCII digits only: no '٣', no '1_000'
_NUMBER = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")


def parse_csv(text: str, where: str, first_line: int = 1, pad_short: bool = True) -> pd.DataFrame:
    """A DataFrame of strings from CSV ``text`` whose first line (file line ``first_line``) is the header.

    Refused with the file line: a blank line, a line with more fields than the header, and a
    quoted field spanning several lines. A line with fewer fields reads as blank values in the missing columns
    (``pad_short=False``: refused too). Row ``i`` of the result is file line ``first_line + 1 + i``."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header, rows = None, []
    previous_end = first_line - 1
    for record in reader:
        line = previous_end + 1
        end = first_line - 1 + reader.line_num
        previous_end = end
        if end != line:
            raise DataError(f"{where}: line {line}: a quoted field spans several lines")
        if header is None:
            if not record:
                raise DataError(f"{where}: line {line} is blank, expected the header line")
            header = record
            continue
        if not record or all(not cell.strip() for cell in record) and len(record) <= 1:
            raise DataError(f"{where}: line {line} is blank")
        if len(record) > len(header):
            hint = " (a trailing comma?)" if record[-1] == "" else ""
            raise DataError(f"{where}: line {line}: malformed CSV ({len(record)} fields, but the header on line "
                            f"{first_line} has {len(header)}){hint}")
        if len(record) < len(header) and not pad_short:
            raise DataError(f"{where}: line {line}: malformed CSV ({len(record)} fields, but the header on line "
                            f"{first_line} has {len(header)})")
        rows.append(record + [""] * (len(header) - len(record)))  # a missing field reads as a blank value
    if header is None:
        raise DataError(f"{where}: empty file, expected a header line")
    if len(set(header)) != len(header):
        duplicate = next(name for name in header if header.count(name) > 1)
        raise DataError(f"{where}: line {first_line}: column '{duplicate}' appears twice in the header")
    return pd.DataFrame(rows, columns=header, dtype=str) if rows else pd.DataFrame(columns=header, dtype=str)


def exact_integer(cell: str) -> int | None:
    """The integer a cell holds exactly (``3``, ``+3``, ``3.0``, ``3e2``), or None when it holds none."""
    text = cell.strip()
    if not _NUMBER.match(text):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value.adjusted() >= 19:  # beyond 64 bits anyway: never build a huge Python int from '1e999999999'
        return INT64_MAX + 1 if value > 0 else INT64_MIN - 1
    if value != value.to_integral_value():
        return None
    return int(value)


def integer_column(cells: pd.Series, on_bad, on_range) -> np.ndarray:
    """int64 values of string ``cells``; ``on_bad(row)`` / ``on_range(row)`` raise for a non-integer cell
    or one outside the 64-bit range."""
    strings = cells.astype(str)
    if len(strings) and strings.str.match(_PLAIN_INT).all():
        return strings.str.strip().astype(np.int64).to_numpy()
    values = np.empty(len(strings), dtype=np.int64)
    for row, cell in enumerate(strings):
        value = exact_integer(cell)
        if value is None:
            on_bad(row)
        if not INT64_MIN <= value <= INT64_MAX:
            on_range(row)
        values[row] = value
    return values


def int64_array(values, name: str, where: str) -> np.ndarray:
    """An array of Ids or labels from a binary file as int64, refused when a value would wrap or round."""
    array = np.asarray(values)
    if array.dtype.kind == "i":
        return array.astype(np.int64)
    if array.dtype.kind == "u":
        if array.size and array.max() > INT64_MAX:
            row = int(np.argmax(array > INT64_MAX))
            raise DataError(f"{where}: row {row}: {name[:-1] if name.endswith('s') else name} {array[row]} is outside "
                            f"the signed 64-bit range")
        return array.astype(np.int64)
    if array.dtype.kind == "f":
        exact = np.isfinite(array) & (array == np.round(array)) & (np.abs(array) <= 2**53)
        if exact.all():
            return array.astype(np.int64)
        row = int(np.argmax(~exact))
        raise DataError(f"{where}: row {row}: {name} must be integers that a float holds exactly, got {array[row]!r}")
    raise DataError(f"{where}: {name} must be integers, got dtype {array.dtype}")


def read_csv_frame(path: str | os.PathLike, what: str = "file", pad_short: bool = True) -> pd.DataFrame:
    """Read a CSV as strings (BOM stripped); every line is checked against the header (exact line numbers).

    ``pad_short=False``: a line with fewer fields than the header is refused too (else its missing fields are blank)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    if not text.strip():
        raise DataError(f"{path}: empty file, expected a header line")
    return parse_csv(text, str(path), pad_short=pad_short)


def _at(row: int, first_line: int | None) -> str:
    """'line L' of a file (``first_line`` = line of row 0) or 'row R' of an in-memory array."""
    return f"row {row}" if first_line is None else f"line {row + first_line}"


def check_unique_ids(ids: np.ndarray, where: str, first_line: int | None = 2) -> None:
    dup = pd.Index(ids).duplicated()
    if dup.any():
        row = int(np.argmax(dup))
        raise DataError(f"{where}: {_at(row, first_line)}: duplicate Id {ids[row]}")
