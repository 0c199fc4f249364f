"""The simulator's people: names, e-mail addresses, time zones, birthdays and consent."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandas as pd
import pytest

from martech.simulate import people

AS_OF = dt.date(2026, 5, 4)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.mark.parametrize(("name", "slug"), [
    ("Dąbrowski", "dabrowski"), ("Müller", "muller"), ("O'Brien", "obrien"), ("van den Berg", "vandenberg"),
    ("Łukasz", "lukasz"), ("Åberg", "aberg"), ("Niccolò", "niccolo"), ("Groß", "gross"),
])
def test_ascii_slug_folds_to_lowercase_ascii(name: str, slug: str) -> None:
    assert people.ascii_slug(name) == slug


def test_people_have_country_names_and_a_matching_time_zone() -> None:
    folks = people.sample_people(_rng(), 5000)
    assert set(folks["country"]) == set(people.COUNTRIES)
    for country, group in folks.groupby("country"):
        zones = {z for z, _, _ in people.TIMEZONES[country]}
        assert set(group["timezone"]) <= zones
        assert set(group["first_name"]) <= set(people.FIRST_NAMES[country])
        assert set(group["last_name"]) <= set(people.LAST_NAMES[country])
    # The US spans several zones, with their own offsets.
    us = folks[folks["country"] == "US"]
    assert us["timezone"].nunique() >= 4
    assert set(us["utc_offset_h"]) <= {-5, -6, -7, -8}
    assert (folks.loc[folks["country"] == "DE", "utc_offset_h"] == 1).all()


def test_emails_are_unique_lowercase_and_on_example_domains_only() -> None:
    rng = _rng(1)
    folks = people.sample_people(rng, 20_000)
    emails = people.make_emails(rng, folks["first_name"], folks["last_name"])
    assert emails.is_unique
    pattern = re.compile(r"^[a-z][a-z0-9._]*@example\.(com|org|net)$")
    assert all(pattern.match(e) for e in emails)


def test_colliding_emails_get_a_running_number() -> None:
    first = pd.Series(["Anna"] * 50)
    last = pd.Series(["Schmidt"] * 50)
    emails = people.make_emails(_rng(2), first, last)
    assert emails.is_unique and len(emails) == 50


def test_birthdays_span_ages_18_to_80_and_include_29_february() -> None:
    days = people.sample_birthdays(_rng(3), 20_000, AS_OF)
    known = days[~np.isnat(days)]
    assert 0.88 < len(known) / len(days) < 0.92
    dates = pd.to_datetime(known)
    age = AS_OF.year - dates.year - ((dates.month > AS_OF.month)
                                     | ((dates.month == AS_OF.month) & (dates.day > AS_OF.day)))
    assert age.min() >= 18 and age.max() <= 80
    assert ((dates.month == 2) & (dates.day == 29)).sum() >= 3
    # With 20k people, every calendar day is somebody's birthday, several times over.
    per_day = pd.Series(1, index=dates.strftime("%m-%d")).groupby(level=0).sum()
    assert len(per_day) == 366 and per_day.drop("02-29").min() >= 5


def test_birthdays_work_when_as_of_is_29_february() -> None:
    days = people.sample_birthdays(_rng(4), 2000, dt.date(2028, 2, 29), filled=1.0)
    assert not np.isnat(days).any()
    assert days.max() <= np.datetime64("2010-02-28")  # 18 on the day at the latest
    assert days.min() >= np.datetime64("1947-03-01")  # still 80


def test_consent_mix_is_roughly_as_configured() -> None:
    consent = pd.Series(people.sample_consent(_rng(5), 20_000))
    share = consent.value_counts(normalize=True)
    for status, expected in zip(people.CONSENT_STATUSES, people.CONSENT_WEIGHTS):
        assert abs(share[status] - expected) < 0.02
