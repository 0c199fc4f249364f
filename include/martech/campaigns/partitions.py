"""Customer hash partitions: how the per-contact work of a campaign run is split into independent slices.

A contact's partition is ``first 32 bits of sha256(contact_id) mod count`` — :func:`partition_of` in
Python and :func:`partition_sql` in the warehouse compute the same number, so a partition's rows can be
selected in SQL and checked in Python. It depends on nothing but the contact id and the count, so a
retried or re-run partition selects exactly the rows it selected before. The count is
``dispatch.partitions`` in ``include/campaigns/_settings.yml``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

__all__ = ["Partition", "partition_of", "partition_sql"]


def partition_of(contact_id: str, count: int) -> int:
    """The partition (``0 .. count-1``) of ``contact_id`` among ``count``."""
    if count < 1:
        raise ValueError(f"partition count must be at least 1, got {count}")
    return int(hashlib.sha256(contact_id.encode("utf-8")).hexdigest()[:8], 16) % count


def partition_sql(column: str) -> str:
    """The SQL of :func:`partition_of` on ``column``, against the bound parameter ``:partitions``."""
    return (f"mod(cast(cast('x' || left(encode(sha256(convert_to({column}, 'UTF8')), 'hex'), 8) as bit(32))"
            " as bigint), cast(:partitions as bigint))")


@dataclass(frozen=True)
class Partition:
    """Slice ``index`` of ``count``; ``Partition(0, 1)`` is the whole run."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ValueError(f"partition {self.index} of {self.count} does not exist")

    @classmethod
    def all(cls, count: int) -> list[Partition]:
        return [cls(i, count) for i in range(count)]

    @property
    def whole(self) -> bool:
        return self.count == 1

    def where(self, column: str) -> str:
        """`` and <column's partition> = :partition`` (nothing for the whole run), for a statement's filter."""
        return "" if self.whole else f" and {partition_sql(column)} = cast(:partition as bigint)"

    def params(self) -> dict[str, int]:
        return {"partition": self.index, "partitions": self.count}

    def __contains__(self, contact_id: object) -> bool:
        return isinstance(contact_id, str) and partition_of(contact_id, self.count) == self.index

    def __str__(self) -> str:
        return f"partition {self.index + 1} of {self.count}"
