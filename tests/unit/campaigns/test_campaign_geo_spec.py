"""Geo targeting, content per country/language, season calendars and loyalty cards in campaign YAML."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml

from martech.campaigns.calendars import CalendarError, load_calendars
from martech.campaigns.spec import CampaignSpecError, load_campaign, load_campaigns
from martech.campaigns.targeting import season_countries, targeted_audience_sql
from martech.paths import CAMPAIGNS_DIR

# A campaign as marketing writes it; each test adds or changes fields.
VALID = yaml.safe_load("""
id: spring
name: Spring sale
owner: crm-team
description: Everyone who bought last spring.
schedule: "0 8 * * *"
audience_sql: audiences/spring.sql
template: birthday
holdout_share: 0.1
variants: [{id: a, weight: 1, subject: "Hello {{ first_name }}"}]
""")

SEASONS = """
summer:
  DE: [{from: "06-01", to: "08-31"}]
  ES: [{from: "05-15", to: "09-30"}]
winter:
  DE: [{from: "11-01", to: "02-28"}]
launch:
  FR: [{from: "2026-03-01", to: "2026-03-07"}]
"""


@pytest.fixture()
def campaigns_dir(tmp_path: Path) -> Path:
    (tmp_path / "audiences").mkdir()
    (tmp_path / "audiences" / "spring.sql").write_text("select contact_id, email, first_name from x\n")
    (tmp_path / "calendars").mkdir()
    (tmp_path / "calendars" / "seasons.yml").write_text(SEASONS)
    return tmp_path


def load(directory: Path, **changes):
    path = directory / "spring.yml"
    path.write_text(yaml.safe_dump({**VALID, **changes}, sort_keys=False))
    return load_campaign(path)


def errors_for(directory: Path, **changes) -> str:
    with pytest.raises(CampaignSpecError) as info:
        load(directory, **changes)
    message = str(info.value)
    assert str(directory / "spring.yml") in message, message
    return message


# -- targeting -----------------------------------------------------------------------------------------


def test_targeting_loads(campaigns_dir: Path) -> None:
    spec = load(campaigns_dir, targeting={"country": ["DE", "AT"], "region": ["DE-BY"], "language": ["de"],
                                          "in_season": "summer", "signed_up_within_days": 2,
                                          "purchased_within_days": 30})
    assert spec.targeting is not None
    assert spec.targeting.country == ("DE", "AT") and spec.targeting.region == ("DE-BY",)
    assert spec.targeting.in_season == "summer"


@pytest.mark.parametrize(("targeting", "expected"), [
    ({"country": ["de"]}, "targeting.country must list upper-case ISO 3166-1 country codes such as [DE, AT]; "
                          "fix 'de', got ['de']"),
    ({"country": []}, "targeting.country must list at least one upper-case ISO 3166-1 country code such as "
                      "[DE, AT] (or leave the condition out), got []"),
    ({"country": ["DE", "DE"]}, "targeting.country lists a upper-case ISO 3166-1 country code twice"),
    ({"region": ["Bavaria"]}, "targeting.region must list ISO 3166-2 region codes such as [DE-BY, AT-9]; fix "
                              "'Bavaria'"),
    ({"language": ["DE"]}, "targeting.language must list lower-case ISO 639-1 language codes such as [de, en]; "
                           "fix 'DE'"),
    ({"in_season": "autumn"}, "targeting.in_season names no calendar of"),
    ({"signed_up_within_days": 0}, "targeting.signed_up_within_days must be between 1 and 365 days, got 0"),
    ({"purchased_within_days": 1000}, "targeting.purchased_within_days must be between 1 and 730 days, got 1000"),
    ({"contry": ["DE"]}, "targeting.contry is not a known field; remove it or fix its spelling (known fields: "
                         "country, language, region, in_season"),
    ({}, "targeting must set at least one condition (country, language, region, in_season"),
    ({"country": ["AT"], "region": ["DE-BY"]}, "targeting region lists ['DE-BY'], outside the countries ['AT']: "
                                               "no contact can match both; add the country or drop the region"),
])
def test_bad_targeting_names_the_field_and_the_fix(campaigns_dir: Path, targeting: dict, expected: str) -> None:
    assert expected in errors_for(campaigns_dir, targeting=targeting)


def test_unknown_calendar_lists_the_known_ones(campaigns_dir: Path) -> None:
    message = errors_for(campaigns_dir, targeting={"in_season": "autumn"})
    assert "(calendars: launch, summer, winter); add it there or fix the name, got 'autumn'" in message


# -- content per country / language ----------------------------------------------------------------------


def test_content_picks_the_first_matching_entry(campaigns_dir: Path) -> None:
    spec = load(campaigns_dir, content=[
        {"language": ["de"], "country": ["AT"], "subject": "Servus {{ first_name }}"},
        {"language": ["de"], "subject": "Hallo {{ first_name }}", "template": "winback"},
        {"country": ["FR"], "template": "vip"},
    ])
    assert spec.localized("AT", "de").variants[0].subject == "Servus {{ first_name }}"
    assert spec.localized("AT", "de").template == "birthday"
    assert (spec.localized("DE", "de").template, spec.localized("DE", "de").variants[0].subject) == (
        "winback", "Hallo {{ first_name }}")
    assert spec.localized("FR", "en").template == "vip"
    assert spec.localized("FR", "en").variants[0].subject == "Hello {{ first_name }}"
    assert spec.localized("GB", "en") is spec
    assert spec.localized(None, None) is spec


@pytest.mark.parametrize(("content", "expected"), [
    ([{"subject": "Hallo"}], "content[0] must say whom it is for: add `country: [DE]` and/or `language: [de]`"),
    ([{"language": ["de"]}], "content[0] must change something: add `subject: '...'` and/or `template: <folder>`"),
    ([{"language": ["de"], "template": "nope"}], "content entry [0] template: folder include/templates/nope lacks body.html.j2, body.txt.j2: add the "
     "template files or fix the name, got 'nope'"),
    ([{"language": ["deu"], "subject": "Hallo"}], "content[0].language must list lower-case ISO 639-1 language"),
    ([{"country": ["DE"], "subject": "two\nlines"}], "content[0].subject must be a single line"),
])
def test_bad_content_names_the_field_and_the_fix(campaigns_dir: Path, content: list, expected: str) -> None:
    assert expected in errors_for(campaigns_dir, content=content)


# -- loyalty card ------------------------------------------------------------------------------------------


def test_loyalty_card_defaults_its_prefix_and_must_differ_from_the_coupon(campaigns_dir: Path) -> None:
    spec = load(campaigns_dir, coupon={"discount_percent": 10, "prefix": "NEWS"},
                loyalty_card={"discount_percent": 5, "validity_days": 7})
    assert spec.loyalty_card is not None
    assert (spec.loyalty_card.prefix, spec.loyalty_card.validity_days) == ("CARD", 7)
    message = errors_for(campaigns_dir, coupon={"discount_percent": 10, "prefix": "SAME"},
                         loyalty_card={"discount_percent": 5, "prefix": "SAME"})
    assert "loyalty_card prefix must differ from the coupon's" in message
    assert "loyalty_card.validity_days must be between 1 and 365 days, got 0" in errors_for(
        campaigns_dir, loyalty_card={"discount_percent": 5, "validity_days": 0})


# -- calendars ---------------------------------------------------------------------------------------------


def test_calendars_say_which_countries_are_in_season(campaigns_dir: Path) -> None:
    calendars = load_calendars(campaigns_dir / "calendars")
    assert calendars["summer"].countries_on(date(2026, 5, 20)) == ("ES",)
    assert calendars["summer"].countries_on(date(2026, 6, 1)) == ("DE", "ES")
    assert calendars["summer"].countries_on(date(2026, 10, 1)) == ()
    # A yearly range over the new year, both ends included.
    assert calendars["winter"].countries_on(date(2026, 12, 31)) == ("DE",)
    assert calendars["winter"].countries_on(date(2027, 2, 28)) == ("DE",)
    assert calendars["winter"].countries_on(date(2027, 3, 1)) == ()
    # A one-off range only in its year.
    assert calendars["launch"].countries_on(date(2026, 3, 7)) == ("FR",)
    assert calendars["launch"].countries_on(date(2027, 3, 7)) == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("summer:\n  de: [{from: '06-01', to: '08-31'}]\n",
     "summer.de must be an upper-case ISO 3166-1 alpha-2 country code (e.g. DE), got 'de'"),
    ("summer:\n  DE: [{from: '06-31', to: '08-31'}]\n",
     "summer.DE[0].from is not a real date; write a date as 'MM-DD' (every year) or 'YYYY-MM-DD' (once), quoted, "
     "got '06-31'"),
    ("summer:\n  DE: [{from: '06-01'}]\n", "summer.DE[0] must have exactly the keys from and to"),
    ("summer:\n  DE: [{from: '06-01', to: '2026-08-31'}]\n",
     "summer.DE[0] mixes a yearly 'MM-DD' and a one-off 'YYYY-MM-DD' end; write both ends the same way"),
    ("summer:\n  DE: [{from: '2026-08-31', to: '2026-06-01'}]\n",
     "summer.DE[0].to must not be before from (2026-08-31); swap them, got 2026-06-01"),
    ("Summer:\n  DE: [{from: '06-01', to: '08-31'}]\n", "Summer must be a calendar name of lower-case letters"),
    ("summer: []\n", "summer must map country codes to date ranges"),
])
def test_bad_calendar_names_file_field_and_fix(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "seasons.yml"
    path.write_text(text)
    with pytest.raises(CalendarError) as info:
        load_calendars(tmp_path)
    assert str(info.value).startswith(f"{path}: "), str(info.value)
    assert expected in str(info.value)


def test_a_broken_calendar_is_reported_on_the_campaign_that_uses_it(campaigns_dir: Path) -> None:
    (campaigns_dir / "calendars" / "more.yml").write_text("summer:\n  GB: [{from: '06-01', to: '08-31'}]\n")
    message = errors_for(campaigns_dir, targeting={"in_season": "summer"})
    assert "targeting.in_season names a calendar, but the calendar files have problems" in message
    assert "summer is already defined in" in message


# -- the shipped calendar and campaigns ----------------------------------------------------------------------


def test_shipped_geo_campaigns() -> None:
    specs = {s.id: s for s in load_campaigns()}
    seasonal, welcome = specs["seasonal_offer"], specs["newsletter_welcome"]
    assert "geo" in seasonal.tags
    assert seasonal.targeting is not None and seasonal.targeting.in_season == "winter_warmers"
    assert {seasonal.localized("DE", "de").template, seasonal.localized("FR", "fr").template,
            seasonal.localized("GB", "en").template} == {"seasonal_offer_de", "seasonal_offer_fr", "seasonal_offer"}
    assert season_countries(seasonal, date(2026, 7, 1)) == ()
    assert set(season_countries(seasonal, date(2026, 12, 10))) == {
        "AT", "DE", "ES", "FR", "GB", "IT", "NL", "PL", "SE", "US"}
    assert season_countries(seasonal, date(2026, 3, 10)) == ("SE",)
    assert welcome.targeting is not None
    assert (welcome.targeting.signed_up_within_days, welcome.targeting.purchased_within_days) == (2, 30)
    assert welcome.coupon is not None and welcome.loyalty_card is not None
    assert (welcome.coupon.validity_days, welcome.loyalty_card.validity_days) == (7, 7)
    assert load_calendars(CAMPAIGNS_DIR / "calendars").keys() >= {"iced_drinks", "winter_warmers"}


def test_targeting_sql_keeps_the_query_and_adds_one_condition_each() -> None:
    spec = {s.id: s for s in load_campaigns()}["newsletter_welcome"]
    sql, params = targeted_audience_sql(spec, "select 1 as contact_id -- a trailing comment", date(2026, 12, 2))
    assert "-- a trailing comment\n)" in sql
    assert params == {"martech_target_signup_days": 2, "martech_target_purchase_days": 30}
    assert sql.count("\n  and ") == 1
    untargeted = {s.id: s for s in load_campaigns()}["birthday"]
    assert targeted_audience_sql(untargeted, "select 1", date(2026, 12, 2)) == ("select 1", {})
