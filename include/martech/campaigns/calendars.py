"""Season and holiday calendars per country: ``include/campaigns/calendars/<file>.yml``.

A calendar file maps calendar names to countries and, per country, the date ranges when the calendar is
"on" (a season, a shipping window, a holiday period)::

    summer:
      DE: [{from: "06-01", to: "08-31"}]
      US: [{from: "05-25", to: "09-07"}]
    christmas_shipping:
      DE: [{from: "11-20", to: "12-19"}]

``from`` and ``to`` are both ``MM-DD`` (the range recurs every year; ``12-15`` to ``01-10`` wraps over the
new year) or both ``YYYY-MM-DD`` (one occurrence). Both ends are included. A country without an entry is
never in season. Campaigns name a calendar with ``targeting.in_season`` (:mod:`martech.campaigns.spec`);
the audience keeps contacts whose country is in season on the run date, the contact's local day.

Like the spec, this module imports only pydantic and yaml: DAG files load it while Airflow parses them.
Every problem is reported as ``<file>: <calendar>.<country>[i].<field> <what is wrong>; <fix>, got <value>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CALENDARS_DIR_NAME", "Calendar", "CalendarError", "DateRange", "load_calendars"]

# Calendars live in this folder beside the campaign files; every *.yml in it is read.
CALENDARS_DIR_NAME = "calendars"

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")
_YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CalendarError(ValueError):
    """A calendar file that cannot be used; ``errors`` holds one actionable line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass(frozen=True)
class DateRange:
    """``start``..``end`` inclusive; ``yearly`` ranges hold (month, day) pairs in year 2000 (a leap year)."""

    start: date
    end: date
    yearly: bool

    def contains(self, day: date) -> bool:
        if not self.yearly:
            return self.start <= day <= self.end
        # Feb 29 of a yearly range is compared in the leap year 2000, so "02-29" works every year.
        probe = date(2000, day.month, day.day)
        if self.start <= self.end:
            return self.start <= probe <= self.end
        return probe >= self.start or probe <= self.end  # wraps over the new year


@dataclass(frozen=True)
class Calendar:
    name: str
    source: str
    ranges: dict[str, tuple[DateRange, ...]]

    def countries_on(self, day: date) -> tuple[str, ...]:
        """The countries whose calendar is on ``day``, sorted."""
        return tuple(sorted(c for c, rs in self.ranges.items() if any(r.contains(day) for r in rs)))


def _parse_end(text: Any, where: str) -> tuple[date, bool]:
    shape = "a date as 'MM-DD' (every year) or 'YYYY-MM-DD' (once), quoted"
    if isinstance(text, date):
        return text, False
    if not isinstance(text, str):
        raise ValueError(f"{where} must be {shape}, got {text!r}")
    m = _MONTH_DAY.match(text)
    try:
        if m:
            return date(2000, int(m[1]), int(m[2])), True
        return date.fromisoformat(text), False
    except ValueError:
        raise ValueError(f"{where} is not a real date; write {shape}, got {text!r}") from None


def _entry_problem(key: Any, pattern: re.Pattern[str], key_rule: str, value: Any, kind: type,
                   value_rule: str) -> str | None:
    """What is wrong with one ``key: value`` entry of a calendar file (None when nothing is)."""
    if not isinstance(key, str) or not pattern.match(key):
        return f"must be {key_rule}, got {key!r}"
    if not isinstance(value, kind) or not value:
        return f"must {value_rule}, got {value!r}"
    return None


def _parse_file(path: Path, where: str) -> dict[str, Calendar]:
    try:
        data = yaml.load(path.read_bytes(), Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise CalendarError([f"{where}: is not valid YAML: {str(exc).replace(chr(10), ' ')}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CalendarError([f"{where}: must map calendar names to countries (e.g. `summer: {{DE: "
                             f"[{{from: '06-01', to: '08-31'}}]}}`), got {type(data).__name__}"])
    errors: list[str] = []
    out: dict[str, Calendar] = {}
    for name, countries in data.items():
        problem = _entry_problem(name, _NAME, "a calendar name of lower-case letters, digits and '_' "
                                 "(e.g. 'summer')", countries, dict,
                                 "map country codes to date ranges (e.g. `DE: [{from: '06-01', to: '08-31'}]`)")
        if problem:
            errors.append(f"{where}: {name} {problem}")
            continue
        ranges: dict[str, tuple[DateRange, ...]] = {}
        for country, items in countries.items():
            field = f"{name}.{country}"
            problem = _entry_problem(country, _COUNTRY, "an upper-case ISO 3166-1 alpha-2 country code (e.g. DE)",
                                     items, list, "be a list of ranges such as [{from: '06-01', to: '08-31'}]")
            if problem:
                errors.append(f"{where}: {field} {problem}")
                continue
            parsed: list[DateRange] = []
            for i, item in enumerate(items):
                at = f"{field}[{i}]"
                if not isinstance(item, dict) or set(item) != {"from", "to"}:
                    errors.append(f"{where}: {at} must have exactly the keys from and to (e.g. {{from: '06-01', "
                                  f"to: '08-31'}}), got {item!r}")
                    continue
                try:
                    start, s_yearly = _parse_end(item["from"], f"{at}.from")
                    end, e_yearly = _parse_end(item["to"], f"{at}.to")
                except ValueError as exc:
                    errors.append(f"{where}: {exc}")
                    continue
                if s_yearly != e_yearly:
                    errors.append(f"{where}: {at} mixes a yearly 'MM-DD' and a one-off 'YYYY-MM-DD' end; write "
                                  f"both ends the same way, got from {item['from']!r} to {item['to']!r}")
                    continue
                if not s_yearly and end < start:
                    errors.append(f"{where}: {at}.to must not be before from ({start}); swap them, got {end}")
                    continue
                parsed.append(DateRange(start, end, s_yearly))
            ranges[country] = tuple(parsed)
        out[name] = Calendar(name, where, ranges)
    if errors:
        raise CalendarError(errors)
    return out


def load_calendars(directory: Path, *, display: Any = str) -> dict[str, Calendar]:
    """Every calendar of every ``*.yml`` in ``directory`` by name (empty when the folder is missing).

    Raises :class:`CalendarError` with every problem; a name defined in two files is one of them.
    ``display`` turns a path into the text errors show.
    """
    out: dict[str, Calendar] = {}
    errors: list[str] = []
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.yml")):
        where = display(path)
        try:
            calendars = _parse_file(path, where)
        except CalendarError as exc:
            errors.extend(exc.errors)
            continue
        for name, calendar in calendars.items():
            if name in out:
                errors.append(f"{where}: {name} is already defined in {out[name].source}; rename one of them")
                continue
            out[name] = calendar
    if errors:
        raise CalendarError(errors)
    return out
