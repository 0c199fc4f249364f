"""The simulator's data files: tab-separated tables beside the modules that read them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path


def read_rows(path: Path, width: int, what: str, valid: Callable[[list[str]], bool] = lambda _: True
              ) -> Iterator[list[str]]:
    """The rows of a tab-separated file (blank lines and ``#`` comments skipped), each checked to have
    ``width`` fields and pass ``valid``; otherwise ValueError naming the file, the line and ``what``
    a row holds."""
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != width or not valid(fields):
            raise ValueError(f"{path}:{line_no}: expected {what} separated by tabs, got {line!r}")
        yield fields
