"""Checks on what a SaaS connector landed, against its stand-in's record versions."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence


def assert_landed_once(landed: Sequence[tuple[str, str]], versions: set[tuple[str, str]]) -> None:
    """The landed (id, version) rows hold no row twice, every record of the source and the current
    version of each."""
    dupes = [v for v, n in Counter(landed).items() if n > 1]
    assert dupes == [], f"duplicate (id, version) rows: {dupes[:5]}"
    assert {i for i, _ in landed} == {i for i, _ in versions}
    assert set(landed) >= versions  # the current version of every record is there
