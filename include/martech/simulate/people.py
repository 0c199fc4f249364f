"""People: countries, regions, languages, names, e-mail addresses, time zones, birthdays and consent.

Everything is drawn with numpy from a caller's ``Generator`` so a seed fixes every value. Names (``names.tsv``) are
kept short per country on purpose: repeats are realistic, and e-mails are made unique afterwards.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import unicodedata
from pathlib import Path

import numpy as np
import pandas as pd

from martech.simulate._data import read_rows

# Country mix of a European shop that also ships to the US.
COUNTRIES: tuple[str, ...] = ("DE", "FR", "GB", "US", "NL", "ES", "IT", "SE", "AT", "PL")
COUNTRY_WEIGHTS: tuple[float, ...] = (0.28, 0.12, 0.12, 0.15, 0.07, 0.07, 0.07, 0.04, 0.04, 0.04)

# IANA zone(s) per country with their share and standard UTC offset in hours. The offset only shapes
# the hour of day people shop at, so ignoring daylight saving time is good enough.
TIMEZONES: dict[str, tuple[tuple[str, float, int], ...]] = {
    "DE": (("Europe/Berlin", 1.0, 1),),
    "FR": (("Europe/Paris", 1.0, 1),),
    "GB": (("Europe/London", 1.0, 0),),
    "US": (("America/New_York", 0.45, -5), ("America/Chicago", 0.28, -6), ("America/Denver", 0.07, -7),
           ("America/Phoenix", 0.03, -7), ("America/Los_Angeles", 0.17, -8)),
    "NL": (("Europe/Amsterdam", 1.0, 1),),
    "ES": (("Europe/Madrid", 1.0, 1),),
    "IT": (("Europe/Rome", 1.0, 1),),
    "SE": (("Europe/Stockholm", 1.0, 1),),
    "AT": (("Europe/Vienna", 1.0, 1),),
    "PL": (("Europe/Warsaw", 1.0, 1),),
}

CURRENCY: dict[str, str] = {"GB": "GBP", "US": "USD"}  # everyone else pays in EUR

# A few ISO 3166-2 regions per country with their share of the shop's contacts (the larger ones first).
REGIONS: dict[str, tuple[tuple[str, float], ...]] = {
    "DE": (("DE-NW", 0.3), ("DE-BY", 0.25), ("DE-BW", 0.2), ("DE-BE", 0.15), ("DE-HH", 0.1)),
    "FR": (("FR-IDF", 0.45), ("FR-ARA", 0.3), ("FR-PAC", 0.25)),
    "GB": (("GB-ENG", 0.84), ("GB-SCT", 0.09), ("GB-WLS", 0.05), ("GB-NIR", 0.02)),
    "US": (("US-NY", 0.3), ("US-IL", 0.2), ("US-CO", 0.07), ("US-AZ", 0.03), ("US-CA", 0.2), ("US-TX", 0.2)),
    "NL": (("NL-NH", 0.4), ("NL-ZH", 0.6)),
    "ES": (("ES-MD", 0.5), ("ES-CT", 0.5)),
    "IT": (("IT-25", 0.6), ("IT-62", 0.4)),
    "SE": (("SE-AB", 0.6), ("SE-O", 0.4)),
    "AT": (("AT-9", 0.6), ("AT-6", 0.4)),
    "PL": (("PL-14", 0.6), ("PL-12", 0.4)),
}
# Preferred languages (ISO 639-1) per country with their shares: some people read the shop in English.
LANGUAGES: dict[str, tuple[tuple[str, float], ...]] = {
    "DE": (("de", 0.92), ("en", 0.08)), "FR": (("fr", 0.95), ("en", 0.05)), "GB": (("en", 1.0),),
    "US": (("en", 0.87), ("es", 0.13)), "NL": (("nl", 0.85), ("en", 0.15)), "ES": (("es", 0.9), ("en", 0.1)),
    "IT": (("it", 0.95), ("en", 0.05)), "SE": (("sv", 0.8), ("en", 0.2)), "AT": (("de", 0.95), ("en", 0.05)),
    "PL": (("pl", 0.9), ("en", 0.1)),
}

NAMES_FILE = Path(__file__).with_name("names.tsv")


def _read_names(path: Path = NAMES_FILE) -> dict[str, dict[str, tuple[str, ...]]]:
    """``{"first": {country: names}, "last": {...}}`` from ``names.tsv`` (country, first or last, names)."""
    out: dict[str, dict[str, tuple[str, ...]]] = {"first": {}, "last": {}}
    for country, kind, names in read_rows(path, 3, "country, 'first' or 'last' and the names",
                                          lambda fields: fields[1] in out):
        out[kind][country] = tuple(names.split(", "))
    return out


_NAMES = _read_names()
FIRST_NAMES: dict[str, tuple[str, ...]] = _NAMES["first"]
LAST_NAMES: dict[str, tuple[str, ...]] = _NAMES["last"]

EMAIL_DOMAINS: tuple[str, ...] = ("example.com", "example.org", "example.net")
EMAIL_DOMAIN_WEIGHTS: tuple[float, ...] = (0.5, 0.25, 0.25)

CONSENT_STATUSES: tuple[str, ...] = ("opted_in", "double_opt_in", "opted_out", "unknown")
CONSENT_WEIGHTS: tuple[float, ...] = (0.55, 0.15, 0.20, 0.10)

MIN_AGE, MAX_AGE = 18, 80
BIRTHDAY_FILLED = 0.90

# Letters that NFKD does not decompose into ASCII.
_ASCII_EXTRA = str.maketrans({"ß": "ss", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE",
                              "đ": "d", "œ": "oe"})


def ascii_slug(text: str) -> str:
    """Lower-case ASCII letters only: ``"Dąbrowski"`` → ``"dabrowski"``, ``"O'Brien"`` → ``"obrien"``."""
    folded = unicodedata.normalize("NFKD", text.translate(_ASCII_EXTRA))
    return "".join(ch for ch in folded.lower() if "a" <= ch <= "z")


def pick(rng: np.random.Generator, n: int, weights: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """``n`` indices drawn with the given (not necessarily normalised) weights."""
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(w), size=n, p=w / w.sum())


def sample_people(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Country, time zone (and its offset), first and last name for ``n`` people."""
    country = np.asarray(COUNTRIES)[pick(rng, n, COUNTRY_WEIGHTS)]
    tz = np.empty(n, dtype=object)
    offset = np.zeros(n, dtype=np.int64)
    first = np.empty(n, dtype=object)
    last = np.empty(n, dtype=object)
    u_tz, u_first, u_last = rng.random(n), rng.random(n), rng.random(n)
    for code in COUNTRIES:  # ten vectorised passes, one per country
        mask = country == code
        zones = TIMEZONES[code]
        cum = np.cumsum([z[1] for z in zones])
        idx = np.minimum(np.searchsorted(cum / cum[-1], u_tz[mask], side="right"), len(zones) - 1)
        tz[mask] = np.asarray([z[0] for z in zones], dtype=object)[idx]
        offset[mask] = np.asarray([z[2] for z in zones])[idx]
        firsts, lasts = FIRST_NAMES[code], LAST_NAMES[code]
        first[mask] = np.asarray(firsts, dtype=object)[(u_first[mask] * len(firsts)).astype(int)]
        # Skewed surname draw: the commonest names really are much commoner.
        li = np.minimum((u_last[mask] ** 1.6 * len(lasts)).astype(int), len(lasts) - 1)
        last[mask] = np.asarray(lasts, dtype=object)[li]
    return pd.DataFrame({"country": country, "timezone": tz, "utc_offset_h": offset,
                         "first_name": first, "last_name": last})


def _stable_unit(key: str, purpose: str) -> float:
    """A number in [0, 1) fixed by ``key``: draws that leave every seeded random stream untouched."""
    digest = hashlib.blake2b(f"{purpose}|{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _weighted(options: tuple[tuple[str, float], ...], u: float) -> str:
    total = sum(w for _, w in options)
    acc = 0.0
    for value, weight in options:
        acc += weight / total
        if u < acc:
            return value
    return options[-1][0]


def regions_and_languages(contact_ids: pd.Series, countries: pd.Series) -> dict[str, pd.Series]:
    """``{"region": ..., "language": ...}`` per contact, fixed by its contact id ("" for an unknown country)."""
    region, language = [], []
    for contact_id, country in zip(contact_ids.astype(str), countries, strict=True):
        regions, languages = REGIONS.get(country), LANGUAGES.get(country)
        region.append(_weighted(regions, _stable_unit(contact_id, "region")) if regions else "")
        language.append(_weighted(languages, _stable_unit(contact_id, "language")) if languages else "")
    return {"region": pd.Series(region, index=contact_ids.index, dtype=object),
            "language": pd.Series(language, index=contact_ids.index, dtype=object)}


def make_emails(rng: np.random.Generator, first: pd.Series, last: pd.Series) -> pd.Series:
    """Plausible, unique, lower-case addresses on reserved example domains only."""
    n = len(first)
    # Names repeat a lot: fold each distinct one once.
    f = first.map({v: ascii_slug(v) for v in first.unique()}).to_numpy(dtype=object)
    lst = last.map({v: ascii_slug(v) for v in last.unique()}).to_numpy(dtype=object)
    number = rng.integers(1, 100, size=n).astype(str).astype(object)
    style = pick(rng, n, (0.30, 0.30, 0.15, 0.15, 0.10))
    initial = np.asarray([s[:1] for s in f], dtype=object)
    local = np.select(
        [style == 0, style == 1, style == 2, style == 3],
        [f + "." + lst, f + "." + lst + number, f + lst + number, initial + "." + lst],
        default=f + "_" + lst,
    )
    domain = np.asarray(EMAIL_DOMAINS, dtype=object)[pick(rng, n, EMAIL_DOMAIN_WEIGHTS)]
    emails = pd.Series(local + "@" + domain, index=first.index)
    # Collisions get a running number, the way a signup form would nudge people; repeat in case a
    # suffixed address happens to equal an existing one.
    while True:
        dup = emails.duplicated(keep="first")
        if not dup.any():
            return emails
        k = emails.groupby(emails).cumcount()
        parts = emails[dup].str.rpartition("@")
        suffix = (k[dup] + 1).astype(str)
        emails[dup] = parts[0] + suffix + "@" + parts[2]


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a non-leap year
        return day.replace(year=day.year - years, day=28)


def sample_birthdays(rng: np.random.Generator, n: int, as_of: dt.date,
                     filled: float = BIRTHDAY_FILLED) -> np.ndarray:
    """``n`` birthdays (``datetime64[D]``, ``NaT`` when unknown), ages 18–80 on ``as_of``.

    Days are drawn uniformly within each person's birth year range, so 29 February comes up at its
    natural rate (about one birthday in 1,461): the pipeline's birthday logic must cope with it.
    """
    earliest = np.datetime64(_years_before(as_of, MAX_AGE + 1), "D") + 1  # still 80 on as_of
    latest = np.datetime64(_years_before(as_of, MIN_AGE), "D")  # turns 18 on as_of at the latest
    span = int((latest - earliest).astype(int)) + 1
    # Ages skew towards 25–55, like an online shop's customer base: a beta over the allowed span.
    offset = (rng.beta(2.2, 2.8, size=n) * span).astype(np.int64)
    days = latest - offset
    out = days.astype("datetime64[D]")
    out[rng.random(n) >= filled] = np.datetime64("NaT")
    return out


def sample_consent(rng: np.random.Generator, n: int) -> np.ndarray:
    """Consent statuses in the mix a CRM export typically shows."""
    return np.asarray(CONSENT_STATUSES, dtype=object)[pick(rng, n, CONSENT_WEIGHTS)]
