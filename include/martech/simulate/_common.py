"""Helpers shared by the simulator's modules: random streams, time formatting, table loading."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from martech.db import copy_rows

EPOCH = dt.date(1970, 1, 1)
Column: TypeAlias = "Sequence[Any] | np.ndarray | pd.Series"  # what `load` accepts per column


def rng_for(seed: int, *stream: int) -> np.random.Generator:
    """An independent random stream per purpose, so changing one part never shifts another's draws."""
    return np.random.default_rng([seed & 0xFFFF_FFFF_FFFF_FFFF, *stream])


def epoch_day(day: dt.date) -> int:
    return (day - EPOCH).days


def iso(ts: np.ndarray | pd.Series) -> np.ndarray:
    """ISO-8601 UTC strings with an explicit offset (``2025-03-04T10:11:12+00:00``); ``None`` for NaN."""
    arr = np.asarray(ts, dtype=float)
    missing = np.isnan(arr)
    secs = np.where(missing, 0, arr).astype(np.int64).astype("datetime64[s]")
    text = np.char.add(np.datetime_as_string(secs, unit="s"), "+00:00").astype(object)
    text[missing] = None
    return text


def money(cents: np.ndarray | pd.Series) -> list[float]:
    """Cents as floats whose ``str()`` is the exact two-decimal amount (``1234`` → ``12.34``)."""
    return (np.asarray(cents, dtype=np.int64) / 100).tolist()


LOAD_CHUNK_ROWS = 250_000


class Lazy:
    """A column formatted chunk by chunk while loading (``Lazy(iso, ts)``), so a load of tens of millions
    of rows never holds all of its text at once."""

    def __init__(self, fn: Callable[[Any], Any], values: Column) -> None:
        self.fn, self.values = fn, values

    def __len__(self) -> int:
        return len(self.values)


def _slice(column: Column | Lazy, start: int, stop: int) -> Column:
    if isinstance(column, Lazy):
        return column.fn(_slice(column.values, start, stop))
    if isinstance(column, pd.Series):
        return column.iloc[start:stop]
    return column[start:stop]


def load(conn: Connection, table: str, columns: Sequence[str], data: Sequence[Column | Lazy]) -> int:
    """COPY column-wise data (one sequence per column, all the same length) into ``table``, in chunks."""
    n = len(data[0]) if data else 0
    loaded = 0
    for start in range(0, max(n, 1), LOAD_CHUNK_ROWS):
        stop = min(start + LOAD_CHUNK_ROWS, n)
        loaded += copy_rows(conn, table, columns, zip(*(_as_list(_slice(c, start, stop)) for c in data)))
    return loaded


def _as_list(column: Column) -> list[Any]:
    """Python values with every missing value (NaN, NaT, pandas' NA) as ``None``, which COPY loads as NULL."""
    if isinstance(column, list):
        return column
    series = pd.Series(column)
    missing = series.isna().to_numpy()
    if not missing.any():
        return series.tolist()
    return [None if m else v for v, m in zip(series.astype(object).tolist(), missing)]


def write_atomically(path: Path, data: bytes) -> None:
    """Write a landing file so a concurrent reader never sees half of it.

    The temporary name does not match the ingest's ``*.csv`` / ``*.jsonl`` patterns.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
