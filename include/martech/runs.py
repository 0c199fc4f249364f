"""What "a run" is: a daily run (a date) or an hourly run (the top of an hour, UTC).

Every stage works for one run and never reads the clock. A run owns its vocabulary:

- ``cutoff``: the instant it sees data up to (source rows updated before it belong to the run): the
  start of the day (UTC) for a daily run, the hour itself for an hourly one;
- ``date``: its run date (an hourly run's date is its hour's);
- ``run_id(step)``: ``2026-11-02`` / ``2026-11-02T13``, with ``.step<n>`` after the first step;
- ``batch_tag``: the tag of the landing batches an hourly pull writes (``2026-11-02T13``);
- ``batch_run_date``: the daily run whose cutoff first covers the run's rows (an hourly batch is
  checked by the daily raw checks of that date).

:meth:`Run.of` is the one place a loosely typed value (a ``date``, an ISO string, an instant) becomes
a run; everything past it takes a :class:`Run`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

__all__ = ["Run"]

_UTC = dt.timezone.utc
_RUN_ID = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:T(\d{2}))?(?:\.step([1-9]\d*))?$")


@dataclass(frozen=True, order=True)
class Run:
    """One run: ``cutoff`` (UTC) and whether it is an hourly run. Ordered by cutoff, daily first on a tie."""

    cutoff: dt.datetime
    hourly: bool = False

    def __post_init__(self) -> None:
        if self.cutoff.tzinfo is None or self.cutoff.utcoffset() != dt.timedelta(0):
            raise ValueError(f"a run's cutoff is an instant in UTC, got {self.cutoff!r}")
        if self.cutoff.minute or self.cutoff.second or self.cutoff.microsecond or (
                not self.hourly and self.cutoff.hour):
            raise ValueError(f"a {'hourly' if self.hourly else 'daily'} run starts on the "
                             f"{'hour' if self.hourly else 'day'}, got {self.cutoff!r}")

    @classmethod
    def daily(cls, day: dt.date | str) -> Run:
        """The run for ``day`` (a ``date`` or ``YYYY-MM-DD``; a ``datetime`` is refused: use :meth:`hour`)."""
        if isinstance(day, dt.datetime):
            raise TypeError(f"run_date must be a date, not a datetime ({day!r}); pass value.date()")
        if isinstance(day, str):
            day = dt.date.fromisoformat(day)
        return cls(dt.datetime.combine(day, dt.time(0), tzinfo=_UTC))

    @classmethod
    def hour(cls, at: dt.datetime) -> Run:
        """The hourly run ``at`` falls in (timezone-aware; truncated to the hour, in UTC)."""
        if at.tzinfo is None or at.utcoffset() is None:
            raise ValueError(f"an hourly run needs a timezone-aware instant, got {at!r}")
        return cls(at.astimezone(_UTC).replace(minute=0, second=0, microsecond=0), hourly=True)

    @classmethod
    def of(cls, value: Run | dt.date | dt.datetime | str) -> Run:
        """A run from what callers hold: an instant is an hourly run, a date (or ``YYYY-MM-DD``) a daily one."""
        if isinstance(value, Run):
            return value
        if isinstance(value, dt.datetime):
            return cls.hour(value)
        if isinstance(value, str) and "T" in value:
            return cls.hour(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
        return cls.daily(value)

    @classmethod
    def parse(cls, run_id: str) -> tuple[Run, int]:
        """``2026-11-02T13.step2`` -> (the 13:00 hourly run, 2); ``2026-11-02`` -> (that daily run, 1)."""
        m = _RUN_ID.match(run_id)
        if not m:
            raise ValueError(f"{run_id!r} is not a run id such as '2026-11-02', '2026-11-02.step2' or"
                             " '2026-11-02T13.step2'")
        day = dt.date.fromisoformat(m[1])
        run = cls.daily(day) if m[2] is None else cls.hour(
            dt.datetime.combine(day, dt.time(int(m[2])), tzinfo=_UTC))
        return run, int(m[3] or 1)

    @property
    def date(self) -> dt.date:
        return self.cutoff.date()

    @property
    def batch_tag(self) -> str:
        """``2026-11-02T13`` for an hourly run, ``2026-11-02`` for a daily one."""
        return self.cutoff.strftime("%Y-%m-%dT%H") if self.hourly else self.date.isoformat()

    def run_id(self, step: int = 1) -> str:
        if step < 1:
            raise ValueError(f"steps are numbered from 1, got {step}")
        return self.batch_tag if step == 1 else f"{self.batch_tag}.step{step}"

    @property
    def batch_run_date(self) -> dt.date:
        """The daily run whose cutoff first covers this run's rows (the next midnight at or after it)."""
        return (self.cutoff - dt.timedelta(microseconds=1)).date() + dt.timedelta(days=1)

    @property
    def value(self) -> dt.date | dt.datetime:
        """The date (daily) or the hour (hourly), for the functions that take either."""
        return self.cutoff if self.hourly else self.date

    def days_before(self, days: int) -> Run:
        """The same kind of run ``days`` days earlier (an hourly run: the same hour)."""
        return Run(self.cutoff - dt.timedelta(days=days), self.hourly)

    def __str__(self) -> str:
        return self.batch_tag
