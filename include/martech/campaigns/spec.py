"""Campaign definitions: one reviewed YAML file per campaign in ``include/campaigns/<id>.yml``.

DAG files call :func:`load_campaigns` while Airflow parses them (one DAG per file), so this module
imports only pydantic and yaml: no pandas, no SQLAlchemy, no Jinja, no database.

Every problem is reported as ``<file>: <field> <what is wrong>, got <value>`` so the person who edits
the YAML knows where to look and what to change. Numeric ranges are pydantic field constraints
(``Field(ge=..., le=...)``); the field's ``description`` is the sentence a range error shows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated, Any, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from martech.campaigns.calendars import CALENDARS_DIR_NAME, CalendarError, load_calendars
from martech.paths import CAMPAIGNS_DIR, PROJECT_ROOT, TEMPLATES_DIR

__all__ = [
    "DEFAULT_BASELINE_CONVERSION",
    "DEFAULT_PRIORITY",
    "GOAL_KPIS",
    "MAX_HOLDOUT_SHARE",
    "SETTINGS_FILE",
    "CampaignSettings",
    "CampaignSpec",
    "CampaignSpecError",
    "CouponSpec",
    "FrequencyCap",
    "Goal",
    "LocalContent",
    "SeedList",
    "SendTime",
    "Step",
    "Targeting",
    "Variant",
    "fires_every_hour",
    "load_campaign",
    "load_campaigns",
    "load_settings",
    "scan_campaigns",
    "validate_cron",
]

MAX_HOLDOUT_SHARE = 0.5
TEMPLATE_FILES = ("body.html.j2", "body.txt.j2")
DEFAULT_PRIORITY = 100
DEFAULT_BASELINE_CONVERSION = 0.05
# Settings shared by every campaign of a folder; the leading underscore keeps load_campaigns off it.
SETTINGS_FILE = "_settings.yml"
# Global frequency cap when no settings file says otherwise: at most this many marketing emails per
# contact within this many days (the run date included).
DEFAULT_MAX_EMAILS = 3
DEFAULT_CAP_WINDOW_DAYS = 7

_CAMPAIGN_ID = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_VARIANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
_TEMPLATE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_COUPON_PREFIX = re.compile(r"^[A-Z0-9]{1,12}$")
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")

# An example value per field, used in "is required" and type errors.
_EXAMPLES = {
    "id": "winback",
    "name": "Win back lapsed customers",
    "owner": "crm-team",
    "description": "Who gets it and why",
    "enabled": "true",
    "schedule": "'0 8 * * *'",
    "audience_sql": "audiences/winback.sql",
    "template": "winback",
    "holdout_share": "0.1",
    "variants": "[{id: a, weight: 1, subject: 'We miss you'}]",
    "salt": "winback-2026",
    "conversion_window_days": "7",
    "tags": "[retention]",
    "weight": "1",
    "subject": "'We miss you, {{ first_name }}'",
    "priority": "10",
    "cooldown_days": "30",
    "baseline_conversion": "0.05",
    "min_detectable_effect": "0.01",
    "coupon": "{discount_percent: 15, validity_days: 7, prefix: BDAY}",
    "discount_percent": "15",
    "validity_days": "7",
    "prefix": "BDAY",
    "discount_attribute": "coupon_percent",
    "max_emails": "3",
    "window_days": "7",
    "delay_days": "1",
    "delay_hours": "24",
    "series_key": "cart_id",
    "catch_up_hours": "6",
    "require_seeds_on_first_run": "true",
    "goal": "{kpi: repeat_rate_new_customers, target: 0.25, deadline: 2027-03-31}",
    "kpi": "repeat_rate_new_customers",
    "target": "0.25",
    "deadline": "2027-03-31",
    "addresses": "[qa@shop.example]",
    "loyalty_card": "{discount_percent: 5, validity_days: 7, prefix: CARD}",
    "targeting": "{country: [DE, AT], in_season: summer}",
    "content": "[{language: [de], subject: 'Hallo {{ first_name }}'}]",
    "country": "[DE, AT]",
    "region": "[DE-BY]",
    "language": "[de, en]",
    "in_season": "summer",
    "signed_up_within_days": "1",
    "purchased_within_days": "30",
}

YAML_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# Errors of Field(gt=, ge=, lt=, le=) constraints: reported with the field's description.
_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})

# A window in days (conversion window, frequency cap window).
WindowDays = Annotated[int, Field(ge=1, le=90, description="must be between 1 and 90 days")]


class CampaignSpecError(ValueError):
    """A campaign definition that cannot be used; ``errors`` holds one actionable line per problem."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


# -- cron --------------------------------------------------------------------------------------------

_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day-of-month", 1, 31, {}),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"))}),
    ("day-of-week", 0, 7, {d: i for i, d in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}),
)
_CRON_ITEM = re.compile(r"^(?P<range>\*|[0-9a-z]+(?:-[0-9a-z]+)?)(?:/(?P<step>[0-9]+))?$")


def validate_cron(expr: str) -> str:
    """Check a 5-field cron expression (minute hour day-of-month month day-of-week).

    Accepts ``*``, numbers, ranges ``a-b``, steps ``*/n`` and ``a-b/n``, lists ``a,b`` and the month and
    weekday names; returns the expression with its whitespace normalized. Raises ``ValueError``.
    """
    shape = "a 5-field cron expression 'minute hour day-of-month month day-of-week' such as '0 8 * * *'"
    if not isinstance(expr, str):
        raise ValueError(f"must be {shape}, got {expr!r}")
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(f"must be {shape}, got {expr!r}")
    for text, (label, lo, hi, names) in zip(fields, _CRON_FIELDS, strict=True):
        for item in text.lower().split(","):
            m = _CRON_ITEM.match(item)
            if not m:
                raise ValueError(f"has an invalid {label} field {text!r} in {expr!r}; expected {shape}")
            if m["step"] is not None and int(m["step"]) < 1:
                raise ValueError(f"has a zero step in its {label} field {text!r} in {expr!r}")
            if m["range"] == "*":
                continue
            bounds = []
            for part in m["range"].split("-"):
                value = names.get(part) if not part.isdigit() else int(part)
                if value is None or not lo <= value <= hi:
                    raise ValueError(
                        f"has {part!r} in its {label} field, outside {lo}-{hi}, in {expr!r}"
                    )
                bounds.append(value)
            if len(bounds) == 2 and bounds[0] > bounds[1]:
                raise ValueError(f"has a descending range {m['range']!r} in its {label} field in {expr!r}")
    return " ".join(fields)


# -- models ------------------------------------------------------------------------------------------


class Variant(BaseModel):
    """One A/B arm of the message: its share of the treatment group and its subject line (Jinja)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str
    weight: float = Field(gt=0, description="must be greater than 0 (weights are relative shares)")
    subject: str

    @field_validator("id")
    @classmethod
    def _id_is_slug(cls, v: str) -> str:
        if not _VARIANT_ID.match(v):
            raise ValueError(
                f"must be a short slug of lower-case letters, digits, '-' or '_' (e.g. 'a'), got {v!r}"
            )
        return v

    @field_validator("subject")
    @classmethod
    def _subject_one_line(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty, got ''")
        if "\n" in v or "\r" in v:
            raise ValueError(f"must be a single line, got {v!r}")
        return v.strip()


class CouponSpec(BaseModel):
    """A unique coupon code per recipient (see :mod:`martech.campaigns.coupons`).

    ``discount_attribute`` names a personalization column of the audience SQL whose value (a whole
    percentage) overrides ``discount_percent`` per recipient, e.g. a discount sized by value tier.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    discount_percent: int = Field(ge=1, le=100, description="must be a whole percentage between 1 and 100")
    validity_days: int = Field(default=14, ge=1, le=365, description="must be between 1 and 365 days")
    prefix: str
    discount_attribute: str | None = None

    @field_validator("prefix")
    @classmethod
    def _prefix_shape(cls, v: str) -> str:
        if not _COUPON_PREFIX.match(v):
            raise ValueError(f"must be 1 to 12 upper-case letters or digits (e.g. 'BDAY'), got {v!r}")
        return v

    @field_validator("discount_attribute")
    @classmethod
    def _attribute_name(cls, v: str | None) -> str | None:
        if v is not None and not _COLUMN.match(v):
            raise ValueError(f"must be the name of a column of the audience SQL (e.g. 'coupon_percent'), got {v!r}")
        return v


_COUNTRY = re.compile(r"^[A-Z]{2}$")
_REGION = re.compile(r"^[A-Z]{2}-[A-Z0-9]{1,3}$")
_LANGUAGE = re.compile(r"^[a-z]{2}$")


def _codes(v: tuple[str, ...], pattern: re.Pattern[str], what: str, example: str) -> tuple[str, ...]:
    if not v:
        raise ValueError(f"must list at least one {what} such as [{example}] (or leave the condition out), got []")
    for code in v:
        if not isinstance(code, str) or not pattern.match(code):
            raise ValueError(f"must list {what}s such as [{example}]; fix {code!r}, got {list(v)}")
    if len(set(v)) != len(v):
        raise ValueError(f"lists a {what} twice; list each once, got {list(v)}")
    return v


class _Audience(BaseModel):
    """Country and language lists shared by targeting and content entries."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    country: tuple[str, ...] | None = None
    language: tuple[str, ...] | None = None

    @field_validator("country", "language", "region", mode="before", check_fields=False)
    @classmethod
    def _list_as_tuple(cls, v: Any) -> Any:
        return tuple(v) if isinstance(v, list) else v

    @field_validator("country")
    @classmethod
    def _countries(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if v is None else _codes(v, _COUNTRY, "upper-case ISO 3166-1 country code", "DE, AT")

    @field_validator("language")
    @classmethod
    def _languages(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if v is None else _codes(v, _LANGUAGE, "lower-case ISO 639-1 language code", "de, en")


class Targeting(_Audience):
    """Who of the audience SQL's rows the campaign keeps, by the contact's staging.contacts row.

    Every condition given must hold (they are ANDed); a contact whose country, region or language is
    unknown matches no list. Days count in the contact's local calendar (staging.contacts.timezone, UTC
    when unknown), the run date being "today":

    - ``country`` / ``region`` / ``language``: ISO 3166-1 alpha-2, ISO 3166-2 and ISO 639-1 codes.
    - ``in_season``: a calendar of ``calendars/*.yml`` beside the campaign files; kept when the contact's
      country is in season on the run date.
    - ``signed_up_within_days``: consent became opted_in (or double_opt_in) on one of the last N days.
    - ``purchased_within_days``: an order (not cancelled) on one of the last N days.

    Applied by :mod:`martech.campaigns.targeting` around the audience query.
    """

    region: tuple[str, ...] | None = None
    in_season: str | None = None
    signed_up_within_days: int | None = Field(default=None, ge=1, le=365,
                                              description="must be between 1 and 365 days")
    purchased_within_days: int | None = Field(default=None, ge=1, le=730,
                                              description="must be between 1 and 730 days")

    @field_validator("region")
    @classmethod
    def _regions(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if v is None else _codes(v, _REGION, "ISO 3166-2 region code", "DE-BY, AT-9")

    @field_validator("in_season")
    @classmethod
    def _calendar_exists(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        base = Path((info.context or {}).get("base_dir", CAMPAIGNS_DIR))
        folder = base / CALENDARS_DIR_NAME
        try:
            known = load_calendars(folder, display=_display)
        except CalendarError as exc:
            raise ValueError(f"names a calendar, but the calendar files have problems: {'; '.join(exc.errors)}"
                             ) from None
        if v not in known:
            names = ", ".join(sorted(known)) or "none"
            raise ValueError(f"names no calendar of {_display(folder)}/*.yml (calendars: {names}); add it there "
                             f"or fix the name, got {v!r}")
        return v

    @model_validator(mode="after")
    def _not_empty(self) -> Targeting:
        if all(getattr(self, f) is None for f in type(self).model_fields):
            raise ValueError("must set at least one condition (" + ", ".join(type(self).model_fields)
                             + ") or be left out")
        if self.country and self.region:
            outside = [r for r in self.region if r[:2] not in self.country]
            if outside:
                raise ValueError(f"region lists {outside}, outside the countries {list(self.country)}: no contact "
                                 "can match both; add the country or drop the region")
        return self


class LocalContent(_Audience):
    """A subject and/or template for the contacts of some countries or languages (``content`` in the YAML).

    The first entry whose ``country`` and ``language`` (each when given) match the contact wins; a
    contact no entry matches gets the campaign's own template and variant subject. The audience SQL must
    return ``country`` and ``language`` columns (staging.contacts has them).
    """

    subject: str | None = None
    template: str | None = None

    @field_validator("subject")
    @classmethod
    def _subject_one_line(cls, v: str | None) -> str | None:
        return None if v is None else Variant._subject_one_line(v)

    @model_validator(mode="after")
    def _complete(self) -> LocalContent:
        if self.country is None and self.language is None:
            raise ValueError("must say whom it is for: add `country: [DE]` and/or `language: [de]`")
        if self.subject is None and self.template is None:
            raise ValueError("must change something: add `subject: '...'` and/or `template: <folder>`")
        return self

    def matches(self, country: str | None, language: str | None) -> bool:
        return ((self.country is None or country in self.country)
                and (self.language is None or language in self.language))


class Step(BaseModel):
    """One message of a series, sent a delay after the trigger, with its own template / subject.

    The audience SQL of a series returns a ``trigger_at`` column (e.g. the signup time). ``delay_days``:
    step *n* of a daily run takes the contacts whose trigger fell on the day ``delay_days + 1`` days before
    the run date, so a delay of 0 means "the first daily run after the trigger". ``delay_hours`` (hourly
    series only): the run of hour H takes the triggers of the hour ``delay_hours + 1`` hours before H, so 0
    means "the first hourly run after the trigger" (see docs/campaigns.md for catch-up and dedupe).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    delay_days: int | None = Field(default=None, ge=0, le=365,
                                   description="must be between 0 and 365 days after the trigger")
    delay_hours: int | None = Field(default=None, ge=0, le=24 * 30,
                                    description="must be between 0 and 720 hours (30 days) after the trigger")
    template: str | None = None  # defaults to the campaign's template
    subject: str | None = None  # replaces every variant's subject for this step

    @model_validator(mode="after")
    def _one_delay(self) -> Step:
        if self.delay_days is not None and self.delay_hours is not None:
            raise ValueError(f"sets both delay_days ({self.delay_days}) and delay_hours ({self.delay_hours}); "
                             "keep one: delay_hours for an hourly series, delay_days otherwise")
        if self.delay_days is None and self.delay_hours is None:
            raise ValueError("needs a delay: add `delay_days: 1` (daily series) or `delay_hours: 24` "
                             "(hourly series)")
        return self

    @property
    def delay(self) -> timedelta:
        """How long after the trigger the step is due."""
        if self.delay_hours is not None:
            return timedelta(hours=self.delay_hours)
        return timedelta(days=self.delay_days or 0)


# The measures a campaign goal may name; martech.kpis.goals computes each (docs/kpis.md, "Campaign goals").
GOAL_KPIS: dict[str, str] = {
    "repeat_rate_new_customers": "share of new customers (first order 90-455 days ago) ordering again within 90 days",
    "conversion_rate": "conversions per treatment member, all send days of the campaign",
    "click_rate": "clicks per delivered message of the treatment arm",
    "revenue_per_member": "revenue per treatment member within the attribution window",
}


class Goal(BaseModel):
    """What the campaign is for: raise ``kpi`` to ``target`` by ``deadline`` (progress in kpis.campaign_goals)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    kpi: str
    target: float = Field(gt=0, description="must be a positive number in the KPI's unit (a rate as 0.25 for 25%)")
    deadline: date

    @field_validator("kpi")
    @classmethod
    def _known_kpi(cls, v: str) -> str:
        if v not in GOAL_KPIS:
            raise ValueError(f"must be one of {', '.join(GOAL_KPIS)}, got {v!r}")
        return v

    @field_validator("deadline", mode="before")
    @classmethod
    def _iso_date(cls, v: Any) -> Any:
        # YAML reads 2027-03-31 as a date; a quoted one arrives as text.
        if isinstance(v, str):
            try:
                return date.fromisoformat(v.strip())
            except ValueError:
                raise ValueError(f"must be a date as YYYY-MM-DD (e.g. 2027-03-31), got {v!r}") from None
        return v


class SendWindow(BaseModel):
    """Quiet hours: messages go out between ``start`` and ``end`` (HH:MM) in the contact's time zone."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _hh_mm(cls, v: str) -> str:
        if not re.fullmatch(r"(?:[01]\d|2[0-3]):[0-5]\d", v):
            raise ValueError(f"must be a time of day as HH:MM (24 h, e.g. '09:00'), got {v!r}")
        return v

    @model_validator(mode="after")
    def _ordered(self) -> SendWindow:
        if self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end} (windows do not cross midnight)")
        return self


class SendTime(BaseModel):
    """Send-time optimisation: each member at their own preferred hour, measured against the fixed time.

    ``optimise`` on: every treatment member is assigned (by a hash of campaign and contact, stable across
    reruns) to arm ``sto`` (sent at their preferred local hour from ``marts.contact_send_hours``, clamped
    into the send window) or, for about ``comparison_share`` of them, to arm ``fixed`` (the window's usual
    time), so ``kpis.send_time_comparison`` can measure the effect.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    optimise: bool = False
    comparison_share: float = Field(default=0.5, ge=0.05, le=0.95,
                                    description="must be a share between 0.05 and 0.95 of members sent at the "
                                                "fixed time (e.g. 0.5)")


def fires_every_hour(schedule: str) -> bool:
    """True for a cron expression that fires once in every hour (one minute value, hour ``*``).

    Such a campaign's series runs are hourly micro-batches: one snapshot per hour and step.
    """
    fields = schedule.split()
    if len(fields) != 5:
        return False
    minute, hour = fields[0], fields[1]
    return minute.isdigit() and hour in ("*", "*/1")


DEFAULT_CATCH_UP_HOURS = 6
DEFAULT_LOYALTY_PREFIX = "CARD"


def default_coupon_prefix(campaign_id: str) -> str:
    """``birthday`` -> ``BIRTHDAY``, ``win-back_2`` -> ``WINBACK2`` (at most 12 characters)."""
    return re.sub(r"[^A-Z0-9]", "", campaign_id.upper())[:12] or "MT"


class CampaignSpec(BaseModel):
    """A validated campaign definition. Build it with :func:`load_campaign`."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    id: str
    name: str
    owner: str
    description: str
    enabled: bool = True
    schedule: str
    audience_sql: str
    template: str
    holdout_share: float = Field(ge=0, le=MAX_HOLDOUT_SHARE,
                                 description=f"must be between 0 and {MAX_HOLDOUT_SHARE}")
    variants: tuple[Variant, ...]
    salt: str
    conversion_window_days: WindowDays = 7
    tags: tuple[str, ...] = ()
    # Eligibility: lower number = higher priority when the frequency cap arbitrates between campaigns.
    priority: int = Field(default=DEFAULT_PRIORITY, ge=0, le=1000,
                          description="must be between 0 and 1000 (lower number = higher priority)")
    # Days after a send (or a holdout membership) of this campaign during which the contact is not
    # eligible for it again; 0 = no cooldown.
    cooldown_days: int = Field(default=0, ge=0, le=365, description="must be between 0 (no cooldown) and 365 days")
    # Power check: expected conversion rate without the message, and the smallest absolute uplift the
    # holdout comparison should be able to detect (alpha 0.05, power 0.8).
    baseline_conversion: float = Field(default=DEFAULT_BASELINE_CONVERSION, gt=0, lt=1,
                                       description="must be a rate between 0 and 1 (e.g. 0.05 for 5%)")
    min_detectable_effect: float | None = Field(
        default=None, gt=0, lt=1,
        description="must be an absolute uplift in conversion rate between 0 and 1 (e.g. 0.01 for one percentage "
                    "point)")
    coupon: CouponSpec | None = None
    # A loyalty card per recipient beside (or instead of) the coupon: codes of their own, kind
    # 'loyalty_card' in campaigns.coupons, valid validity_days from the run date; templates get `loyalty_card`.
    loyalty_card: CouponSpec | None = None
    # Conditions on the contact (country, region, language, season, recent sign-up or purchase).
    targeting: Targeting | None = None
    # Subject / template per country or language, the first matching entry per contact.
    content: tuple[LocalContent, ...] = ()
    # Quiet hours: when set, each member's send_at / send_before hold the window on the run date in the
    # contact's time zone (staging.contacts.timezone, UTC when unknown).
    send_window: SendWindow | None = None
    # Send-time optimisation inside the send window, with a randomised comparison against the fixed time.
    send_time: SendTime | None = None
    # Sunset: after this many sends of the campaign without an open, click or order, the contact is
    # suppressed (reason sunset); None = never.
    sunset_after: int | None = Field(default=None, ge=2, le=50,
                                     description="must be between 2 and 50 unanswered sends (or left out)")
    # A series (welcome, abandoned cart, ...): one message per step, in order; empty = a single message.
    steps: tuple[Step, ...] = ()
    # Hourly series: the audience column naming one pass through the series (a cart); each step is
    # decided once per value (campaigns.series_steps), however many hourly runs see it.
    series_key: str | None = Field(default=None, validate_default=True)
    # Hourly series: how many hourly runs after a step falls due may still send it (a missed hour is
    # caught up by the next run); beyond that the step is dropped as stale.
    catch_up_hours: int = Field(default=DEFAULT_CATCH_UP_HOURS, ge=1, le=48,
                                description="must be between 1 (only the hour a step is due) and 48 hours")
    # The campaign's first real send waits for the seed list (_settings.yml seed_list): no seed addresses,
    # or a seed send that did not go out, and the first run sends nothing (martech.campaigns.seeds).
    require_seeds_on_first_run: bool = False
    # The KPI target the campaign works towards (kpis.campaign_goals tracks progress; the report shows it).
    goal: Goal | None = None

    _source_path: Path | None = PrivateAttr(default=None)
    _base_dir: Path = PrivateAttr(default=CAMPAIGNS_DIR)
    _templates_dir: Path = PrivateAttr(default=TEMPLATES_DIR)
    _definition_hash: str | None = PrivateAttr(default=None)

    @model_validator(mode="before")
    @classmethod
    def _salt_defaults_to_id(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "salt" not in data and "id" in data:
            data = {**data, "salt": data["id"]}
        if (isinstance(data, Mapping) and isinstance(data.get("coupon"), Mapping)
                and "prefix" not in data["coupon"] and isinstance(data.get("id"), str)):
            data = {**data, "coupon": {**data["coupon"], "prefix": default_coupon_prefix(data["id"])}}
        if isinstance(data, Mapping) and isinstance(data.get("loyalty_card"), Mapping) \
                and "prefix" not in data["loyalty_card"]:
            data = {**data, "loyalty_card": {**data["loyalty_card"], "prefix": DEFAULT_LOYALTY_PREFIX}}
        return data

    @field_validator("variants", "tags", "steps", "content", mode="before")
    @classmethod
    def _lists_as_tuples(cls, v: Any) -> Any:
        # YAML gives lists; the model stores tuples so a spec is hashable and immutable.
        return tuple(v) if isinstance(v, list) else v

    @field_validator("id")
    @classmethod
    def _id_matches_file(cls, v: str, info: ValidationInfo) -> str:
        if not _CAMPAIGN_ID.match(v):
            raise ValueError(
                "must be a slug of lower-case letters, digits, '-' or '_' starting with a letter "
                f"(e.g. 'winback'), got {v!r}"
            )
        stem = (info.context or {}).get("stem")
        if stem is not None and v != stem:
            raise ValueError(f"must equal the file name {stem!r} (rename the file or the id), got {v!r}")
        return v

    @field_validator("name", "owner", "description", "salt")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError(f"must not be empty, got {v!r}")
        return v.strip()

    @field_validator("schedule")
    @classmethod
    def _cron(cls, v: str) -> str:
        return validate_cron(v)

    @field_validator("audience_sql")
    @classmethod
    def _sql_exists(cls, v: str, info: ValidationInfo) -> str:
        base = Path((info.context or {}).get("base_dir", CAMPAIGNS_DIR))
        rel = Path(v)
        if rel.is_absolute() or ".." in rel.parts or rel.suffix != ".sql":
            raise ValueError(
                "must be a .sql path relative to the campaigns folder (e.g. 'audiences/winback.sql'), "
                f"got {v!r}"
            )
        if not (base / rel).is_file():
            raise ValueError(f"names a file that does not exist ({_display(base / rel)}): create it "
                             f"or fix the path, got {v!r}")
        return rel.as_posix()

    @field_validator("template")
    @classmethod
    def _template_exists(cls, v: str, info: ValidationInfo) -> str:
        root = Path((info.context or {}).get("templates_dir", TEMPLATES_DIR))
        if not _TEMPLATE.match(v) or v.startswith("_"):
            raise ValueError(
                f"must be the name of a folder under {_display(root)} (e.g. 'winback'), got {v!r}"
            )
        missing = [name for name in TEMPLATE_FILES if not (root / v / name).is_file()]
        if missing:
            raise ValueError(
                f"folder {_display(root / v)} lacks {', '.join(missing)}: add the template files or fix "
                f"the name, got {v!r}"
            )
        return v

    @field_validator("steps")
    @classmethod
    def _steps_valid(cls, v: tuple[Step, ...], info: ValidationInfo) -> tuple[Step, ...]:
        hours = [s.delay.total_seconds() / 3600 for s in v]
        if hours != sorted(set(hours)):
            shown = [f"{s.delay_hours}h" if s.delay_hours is not None else f"{s.delay_days}d" for s in v]
            raise ValueError(f"must have strictly increasing delays, got {shown}")
        schedule = info.data.get("schedule")
        hourly_steps = [i for i, s in enumerate(v) if s.delay_hours is not None]
        if hourly_steps and isinstance(schedule, str) and not fires_every_hour(schedule):
            raise ValueError(f"use delay_hours (steps[{hourly_steps[0]}]), which needs an hourly schedule such as "
                             f"'0 * * * *'; change the schedule or use delay_days, got schedule {schedule!r}")
        for s in v:
            if s.template is not None:
                cls._template_exists(s.template, info)
        return v

    @field_validator("content")
    @classmethod
    def _content_templates(cls, v: tuple[LocalContent, ...], info: ValidationInfo) -> tuple[LocalContent, ...]:
        for i, entry in enumerate(v):
            if entry.template is not None:
                try:
                    cls._template_exists(entry.template, info)
                except ValueError as exc:
                    raise ValueError(f"entry [{i}] template: {exc}") from None
        return v

    @field_validator("loyalty_card")
    @classmethod
    def _loyalty_prefix(cls, v: CouponSpec | None, info: ValidationInfo) -> CouponSpec | None:
        coupon = info.data.get("coupon")
        if v is not None and coupon is not None and coupon.prefix == v.prefix:
            raise ValueError(f"prefix must differ from the coupon's, so a code tells which it is; set "
                             f"`loyalty_card.prefix: CARD`, got {v.prefix!r}")
        return v

    @field_validator("send_time")
    @classmethod
    def _send_time_needs_window(cls, v: SendTime | None, info: ValidationInfo) -> SendTime | None:
        if v is not None and v.optimise and info.data.get("send_window") is None:
            raise ValueError("optimise needs a send_window to clamp the preferred hours into; add e.g. "
                             "`send_window: {start: '08:00', end: '21:00'}` or set optimise: false")
        return v

    @field_validator("series_key")
    @classmethod
    def _series_key(cls, v: str | None, info: ValidationInfo) -> str | None:
        if "steps" not in info.data or "schedule" not in info.data:
            return v  # those fields failed: their errors are reported, this one would only echo them
        steps, schedule = info.data["steps"], info.data["schedule"]
        hourly = bool(steps) and isinstance(schedule, str) and fires_every_hour(schedule)
        if v is None:
            if hourly:
                raise ValueError("is required for an hourly series: the audience column that names one pass "
                                 "through the series (e.g. `series_key: cart_id`), so every step goes once per "
                                 "value however many hourly runs see it")
            return v
        if not _COLUMN.match(v):
            raise ValueError(f"must be the name of a column of the audience SQL (e.g. 'cart_id'), got {v!r}")
        if not hourly:
            raise ValueError("only applies to a series with an hourly schedule ('0 * * * *'); remove it, "
                             f"got {v!r}")
        return v

    @field_validator("variants")
    @classmethod
    def _variants_unique(cls, v: tuple[Variant, ...]) -> tuple[Variant, ...]:
        if not v:
            raise ValueError(f"must list at least one variant such as {_EXAMPLES['variants']}, got []")
        ids = [variant.id for variant in v]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"must have unique ids; rename the repeated {', '.join(duplicates)}, got {ids}")
        return v

    @field_validator("tags")
    @classmethod
    def _tags_clean(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for tag in v:
            if not tag.strip():
                raise ValueError(f"must not contain empty tags, got {list(v)}")
        return v

    # -- derived -------------------------------------------------------------------------------------

    @property
    def source_path(self) -> Path | None:
        """The YAML file this spec was loaded from (None when built in code)."""
        return self._source_path

    @property
    def audience_sql_path(self) -> Path:
        return self._base_dir / self.audience_sql

    @property
    def templates_dir(self) -> Path:
        return self._templates_dir

    @property
    def hourly(self) -> bool:
        """A series on an hourly schedule: one snapshot per hour and step, run ids ``<date>T<HH>``."""
        return bool(self.steps) and fires_every_hour(self.schedule)

    @property
    def step_numbers(self) -> tuple[int, ...]:
        """1..n for a series, (1,) for a single message."""
        return tuple(range(1, len(self.steps) + 1)) or (1,)

    def for_step(self, step: int) -> CampaignSpec:
        """This campaign as step ``step`` renders it (the step's template and subject)."""
        if not self.steps:
            if step != 1:
                raise ValueError(f"campaign {self.id!r} has no steps; step must be 1, got {step}")
            return self
        if not 1 <= step <= len(self.steps):
            raise ValueError(f"campaign {self.id!r} has steps 1..{len(self.steps)}, got {step}")
        s = self.steps[step - 1]
        update: dict[str, Any] = {"template": s.template or self.template}
        if s.subject:
            update["variants"] = tuple(v.model_copy(update={"subject": s.subject}) for v in self.variants)
        return self.model_copy(update=update)

    @property
    def campaigns_dir(self) -> Path:
        """The folder of the YAML file (where ``_settings.yml`` is looked for)."""
        return self._base_dir

    def audience_sql_text(self) -> str:
        return self.audience_sql_path.read_text(encoding="utf-8")

    @property
    def definition_hash(self) -> str:
        """sha256 of the YAML text and the audience SQL text: changes whenever either file does."""
        if self._definition_hash is None:
            # Built in code: hash a canonical dump in place of the file text.
            dump = self.model_dump_json().encode()
            self._definition_hash = _hash(dump, self.audience_sql_path.read_bytes())
        return self._definition_hash

    def localized(self, country: str | None, language: str | None) -> CampaignSpec:
        """This campaign as a contact of ``country`` / ``language`` gets it (the first matching ``content``)."""
        for entry in self.content:
            if entry.matches(country, language):
                update: dict[str, Any] = {"template": entry.template or self.template, "content": ()}
                if entry.subject:
                    update["variants"] = tuple(v.model_copy(update={"subject": entry.subject})
                                               for v in self.variants)
                return self.model_copy(update=update)
        return self

    def variant(self, variant_id: str) -> Variant:
        for v in self.variants:
            if v.id == variant_id:
                return v
        raise KeyError(f"campaign {self.id!r} has no variant {variant_id!r} "
                       f"(variants: {', '.join(v.id for v in self.variants)})")


# -- settings shared by all campaigns ---------------------------------------------------------------


class FrequencyCap(BaseModel):
    """At most ``max_emails`` marketing emails per contact within ``window_days`` days (run date included).

    ``max_emails: null`` switches the cap off.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    max_emails: int | None = Field(default=DEFAULT_MAX_EMAILS, ge=1,
                                   description="must be at least 1 (or null to switch the cap off)")
    window_days: WindowDays = DEFAULT_CAP_WINDOW_DAYS


class SeedList(BaseModel):
    """Internal test addresses that receive every variant of every real send (``martech.campaigns.seeds``).

    ``MARTECH_SEED_ADDRESSES`` (comma-separated) replaces the file's list when set.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    addresses: tuple[str, ...] = ()

    @field_validator("addresses", mode="before")
    @classmethod
    def _list_as_tuple(cls, v: Any) -> Any:
        return tuple(v) if isinstance(v, list) else v

    @field_validator("addresses")
    @classmethod
    def _addresses(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        # The address pattern itself is checked where the list is used (martech.campaigns.seeds), beside
        # the rule the audiences apply; here: one entry per address, compared trimmed and lower-cased.
        out: list[str] = []
        for i, address in enumerate(v):
            normal = address.strip().lower()
            if not normal or "@" not in normal:
                raise ValueError(f"[{i}] must be an e-mail address such as 'qa@shop.example', got {address!r}")
            if normal in out:
                raise ValueError(f"[{i}] repeats {normal!r}; list each seed address once")
            out.append(normal)
        return tuple(out)


class DispatchSettings(BaseModel):
    """How a run's sends are split: ``partitions`` customer hash partitions (``martech.campaigns.partitions``),
    each a task of its own in the campaign DAG, run in parallel by as many workers as there are."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    partitions: int = Field(default=4, ge=1, le=256)


class CampaignSettings(BaseModel):
    """``include/campaigns/_settings.yml``: rules every campaign of the folder shares."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    frequency_cap: FrequencyCap = FrequencyCap()
    seed_list: SeedList = SeedList()
    dispatch: DispatchSettings = DispatchSettings()


def _parse_yaml(where: str, raw: bytes) -> Any:
    try:
        return yaml.load(raw, Loader=YAML_LOADER)
    except yaml.YAMLError as exc:
        detail = str(exc).replace("\n", " ")
        raise CampaignSpecError([f"{where}: is not valid YAML: {detail}"]) from exc


def load_settings(directory: Path | str = CAMPAIGNS_DIR) -> CampaignSettings:
    """The folder's ``_settings.yml``, or the defaults when there is none; raises :class:`CampaignSpecError`."""
    path = Path(directory) / SETTINGS_FILE
    if not path.is_file():
        return CampaignSettings()
    where = _display(path)
    data = _parse_yaml(where, path.read_bytes())
    if data is None:
        return CampaignSettings()
    if not isinstance(data, dict):
        raise CampaignSpecError([f"{where}: must be a mapping of settings (frequency_cap, seed_list, dispatch), "
                                 f"got {type(data).__name__}"])
    try:
        return CampaignSettings.model_validate(data)
    except ValidationError as exc:
        raise CampaignSpecError([_format_error(where, e, CampaignSettings)
                                 for e in exc.errors(include_url=False)]) from None


# -- loading -----------------------------------------------------------------------------------------


def _display(path: Path) -> str:
    """A path as a person would type it: relative to the project when inside it."""
    try:
        return path.resolve().relative_to(PROJECT_ROOT).as_posix()
    except ValueError:
        return str(path)


def _hash(yaml_bytes: bytes, sql_bytes: bytes) -> str:
    digest = hashlib.sha256()
    digest.update(yaml_bytes)
    digest.update(b"\0")
    digest.update(sql_bytes)
    return digest.hexdigest()


def _field_name(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, directly or inside ``X | None`` / ``tuple[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for arg in get_args(annotation) if (m := _model_in(arg)) is not None), None)


def _locate(top: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[type[BaseModel], FieldInfo | None]:
    """The model that holds the last field of ``loc``, and that field (None when it is not one of its fields)."""
    model, info = top, None
    for part in (p for p in loc if isinstance(p, str)):
        if info is not None:
            model = _model_in(info.annotation) or model
        info = model.model_fields.get(part)
        if info is None:
            break
    return model, info


def _format_error(where: str, err: Mapping[str, Any], top: type[BaseModel] | None = None) -> str:
    field = _field_name(err["loc"]) or "(file)"
    last = next((p for p in reversed(err["loc"]) if isinstance(p, str)), "")
    kind = err["type"]
    model, info = _locate(top or CampaignSpec, err["loc"])
    if kind in _RANGE_ERRORS and info is not None and info.description:
        return f"{where}: {field} {info.description}, got {err['input']}"
    if kind == "value_error":
        message = str(err["ctx"]["error"]) if "ctx" in err else err["msg"]
        return f"{where}: {field} {message}"
    if kind == "missing":
        example = _EXAMPLES.get(last, "...")
        return f"{where}: {field} is required: add `{last}: {example}`"
    if kind == "extra_forbidden":
        return (f"{where}: {field} is not a known field; remove it or fix its spelling "
                f"(known fields: {', '.join(model.model_fields)})")
    hint = f" (e.g. {_EXAMPLES[last]})" if last in _EXAMPLES else ""
    # The model keeps lists as tuples; the person editing YAML writes lists.
    msg = (err["msg"][0].lower() + err["msg"][1:]).replace("valid tuple", "list")
    return f"{where}: {field}: {msg}{hint}, got {err.get('input')!r}"


def load_campaign(path: Path | str, *, templates_dir: Path = TEMPLATES_DIR) -> CampaignSpec:
    """Read and validate one campaign file; raises :class:`CampaignSpecError`."""
    path = Path(path)
    where = _display(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CampaignSpecError([f"{where}: cannot read the file: {exc.strerror or exc}"]) from exc
    data = _parse_yaml(where, raw)
    if not isinstance(data, dict):
        raise CampaignSpecError(
            [f"{where}: must be a mapping of fields (id, name, owner, ...), got {type(data).__name__}"]
        )
    context = {"stem": path.stem, "base_dir": path.parent, "templates_dir": templates_dir}
    try:
        spec = CampaignSpec.model_validate(data, context=context)
    except ValidationError as exc:
        raise CampaignSpecError([_format_error(where, e) for e in exc.errors(include_url=False)]) from None
    spec._source_path = path
    spec._base_dir = path.parent
    spec._templates_dir = templates_dir
    spec._definition_hash = _hash(raw, spec.audience_sql_path.read_bytes())
    return spec


def scan_campaigns(directory: Path | str = CAMPAIGNS_DIR, *,
                   templates_dir: Path = TEMPLATES_DIR) -> tuple[list[CampaignSpec], dict[Path, list[str]]]:
    """Every ``*.yml`` in ``directory`` (files starting with ``_`` are ignored), each loaded on its own.

    Returns the valid specs sorted by id and, per broken file, its problems: one bad file costs only
    itself (the DAG file builds the others' DAGs; ``martech campaigns validate`` prints every problem).
    """
    specs: list[CampaignSpec] = []
    errors: dict[Path, list[str]] = {}
    seen: dict[str, Path] = {}
    for path in sorted(Path(directory).glob("*.yml")):
        if path.name.startswith("_"):
            continue
        try:
            spec = load_campaign(path, templates_dir=templates_dir)
        except CampaignSpecError as exc:
            errors[path] = list(exc.errors)
            continue
        if spec.id in seen:
            errors[path] = [f"{_display(path)}: id {spec.id!r} is already used by {_display(seen[spec.id])}; "
                            "give each campaign its own id"]
            continue
        seen[spec.id] = path
        specs.append(spec)
    return sorted(specs, key=lambda s: s.id), errors


def load_campaigns(directory: Path | str = CAMPAIGNS_DIR, *,
                   templates_dir: Path = TEMPLATES_DIR) -> list[CampaignSpec]:
    """Every campaign in ``directory``, sorted by id; problems in all files are raised together as one
    :class:`CampaignSpecError`."""
    specs, errors = scan_campaigns(directory, templates_dir=templates_dir)
    if errors:
        raise CampaignSpecError([line for lines in errors.values() for line in lines])
    return specs
