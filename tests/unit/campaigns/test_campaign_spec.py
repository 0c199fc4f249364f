"""Campaign YAML validation: every bad value is reported with the file, the field and the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from martech.campaigns.spec import (
    CampaignSpecError,
    load_campaign,
    load_campaigns,
    validate_cron,
)
from martech.paths import CAMPAIGNS_DIR, TEMPLATES_DIR

VALID = {
    "id": "spring",
    "name": "Spring sale",
    "owner": "crm-team",
    "description": "Everyone who bought last spring.",
    "schedule": "0 8 * * *",
    "audience_sql": "audiences/spring.sql",
    "template": "birthday",
    "holdout_share": 0.1,
    "variants": [{"id": "a", "weight": 1, "subject": "Hello {{ first_name }}"},
                 {"id": "b", "weight": 2, "subject": "Spring is here"}],
    "tags": ["seasonal"],
}


@pytest.fixture()
def campaigns_dir(tmp_path: Path) -> Path:
    (tmp_path / "audiences").mkdir()
    (tmp_path / "audiences" / "spring.sql").write_text("select contact_id, email, first_name from x\n")
    return tmp_path


def write(directory: Path, data: dict, stem: str = "spring") -> Path:
    path = directory / f"{stem}.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def errors_for(directory: Path, **changes) -> str:
    data = {**VALID, **changes}
    data = {k: v for k, v in data.items() if v is not REMOVE}
    path = write(directory, data)
    with pytest.raises(CampaignSpecError) as info:
        load_campaign(path)
    message = str(info.value)
    assert str(path) in message, message
    return message


REMOVE = object()


def test_valid_definition_loads_with_defaults(campaigns_dir: Path) -> None:
    spec = load_campaign(write(campaigns_dir, VALID))
    assert spec.id == "spring"
    assert spec.enabled is True
    assert spec.salt == "spring"
    assert spec.conversion_window_days == 7
    assert [v.id for v in spec.variants] == ["a", "b"]
    assert spec.audience_sql_path == campaigns_dir / "audiences" / "spring.sql"
    assert spec.source_path == campaigns_dir / "spring.yml"
    assert len(spec.definition_hash) == 64


def test_definition_hash_follows_yaml_and_sql(campaigns_dir: Path) -> None:
    first = load_campaign(write(campaigns_dir, VALID)).definition_hash
    assert load_campaign(write(campaigns_dir, VALID)).definition_hash == first
    (campaigns_dir / "audiences" / "spring.sql").write_text("select 2\n")
    second = load_campaign(write(campaigns_dir, VALID)).definition_hash
    assert second != first
    third = load_campaign(write(campaigns_dir, {**VALID, "name": "Spring sale 2"})).definition_hash
    assert third not in {first, second}


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"id": "Spring Sale"}, "id must be a slug"),
        ({"id": "autumn"}, "id must equal the file name 'spring'"),
        ({"id": REMOVE}, "id is required"),
        ({"name": ""}, "name must not be empty"),
        ({"name": 42}, "name: input should be a valid string"),
        ({"owner": REMOVE}, "owner is required: add `owner: "),
        ({"description": "  "}, "description must not be empty"),
        ({"enabled": "maybe"}, "enabled: input should be a valid boolean"),
        ({"schedule": "0 8 * *"}, "schedule must be a 5-field cron expression"),
        ({"schedule": "0 25 * * *"}, "schedule has '25' in its hour field, outside 0-23"),
        ({"schedule": "61 8 * * *"}, "minute field"),
        ({"schedule": "0 8 * * funday"}, "day-of-week field"),
        ({"schedule": "@daily"}, "schedule must be a 5-field cron expression"),
        ({"audience_sql": "audiences/missing.sql"}, "audience_sql names a file that does not exist"),
        ({"audience_sql": "../elsewhere.sql"}, "audience_sql must be a .sql path relative to"),
        ({"audience_sql": "audiences/spring.txt"}, "audience_sql must be a .sql path"),
        ({"template": "nope"}, "template folder"),
        ({"template": "_partials"}, "template must be the name of a folder"),
        ({"holdout_share": 0.8}, "holdout_share must be between 0 and 0.5, got 0.8"),
        ({"holdout_share": -0.1}, "holdout_share must be between 0 and 0.5, got -0.1"),
        ({"holdout_share": "ten percent"}, "holdout_share: input should be a valid number"),
        ({"variants": []}, "variants must list at least one variant"),
        ({"variants": [{"id": "a", "weight": 1, "subject": "x"}, {"id": "a", "weight": 1, "subject": "y"}]},
         "variants must have unique ids; rename the repeated a"),
        ({"variants": [{"id": "a", "weight": 0, "subject": "x"}]}, "variants[0].weight must be greater than 0"),
        ({"variants": [{"id": "a", "weight": 1, "subject": ""}]}, "variants[0].subject must not be empty"),
        ({"variants": [{"id": "A B", "weight": 1, "subject": "x"}]}, "variants[0].id must be a short slug"),
        ({"variants": [{"id": "a", "weight": 1}]}, "variants[0].subject is required"),
        ({"variants": [{"id": "a", "weight": 1, "subject": "x", "body": "y"}]},
         "variants[0].body is not a known field"),
        ({"salt": ""}, "salt must not be empty"),
        ({"conversion_window_days": 0}, "conversion_window_days must be between 1 and 90 days, got 0"),
        ({"conversion_window_days": 91}, "conversion_window_days must be between 1 and 90 days, got 91"),
        ({"conversion_window_days": 7.5}, "conversion_window_days: input should be a valid integer"),
        ({"tags": "retention"}, "tags: input should be a list"),
        ({"tags": [""]}, "tags must not contain empty tags"),
        ({"holdout_pct": 10}, "holdout_pct is not a known field; remove it or fix its spelling"),
    ],
)
def test_bad_values_name_file_field_and_fix(campaigns_dir: Path, changes: dict, expected: str) -> None:
    message = errors_for(campaigns_dir, **changes)
    assert expected in message, message


def test_every_problem_is_reported_at_once(campaigns_dir: Path) -> None:
    message = errors_for(campaigns_dir, holdout_share=0.9, conversion_window_days=0, owner=REMOVE)
    assert len(message.splitlines()) == 3


def test_message_shows_the_path_relative_to_the_project(tmp_path: Path, monkeypatch) -> None:
    import martech.campaigns.spec as spec_module

    monkeypatch.setattr(spec_module, "PROJECT_ROOT", tmp_path.resolve())
    campaigns = tmp_path / "include" / "campaigns"
    (campaigns / "audiences").mkdir(parents=True)
    (campaigns / "audiences" / "winback.sql").write_text("select 1\n")
    data = yaml.safe_load((CAMPAIGNS_DIR / "winback.yml").read_text())
    data["holdout_share"] = 0.8
    path = write(campaigns, data, stem="winback")
    with pytest.raises(CampaignSpecError) as info:
        load_campaign(path)
    assert str(info.value) == "include/campaigns/winback.yml: holdout_share must be between 0 and 0.5, got 0.8"


def test_not_yaml_or_not_a_mapping(campaigns_dir: Path) -> None:
    bad = campaigns_dir / "spring.yml"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(CampaignSpecError, match="is not valid YAML"):
        load_campaign(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(CampaignSpecError, match="must be a mapping of fields"):
        load_campaign(bad)


def test_load_campaigns_sorts_skips_underscore_files_and_collects_errors(campaigns_dir: Path) -> None:
    write(campaigns_dir, VALID)
    write(campaigns_dir, {**VALID, "id": "apple"}, stem="apple")
    (campaigns_dir / "_notes.yml").write_text("not: a campaign\n")
    assert [s.id for s in load_campaigns(campaigns_dir)] == ["apple", "spring"]
    write(campaigns_dir, {**VALID, "id": "broken", "holdout_share": 2}, stem="broken")
    write(campaigns_dir, {**VALID, "id": "wrong"}, stem="zeta")
    with pytest.raises(CampaignSpecError) as info:
        load_campaigns(campaigns_dir)
    assert len(info.value.errors) == 2
    assert "broken.yml: holdout_share" in str(info.value)
    assert "zeta.yml: id must equal the file name 'zeta'" in str(info.value)


def test_shipped_campaigns_load() -> None:
    specs = load_campaigns()
    assert [s.id for s in specs] == ["abandoned_cart", "birthday", "lead_nurture", "mql_follow_up",
                                    "newsletter_welcome", "replenishment", "review", "seasonal_offer", "upsell",
                                    "vip", "welcome", "winback"]
    for spec in specs:
        assert spec.audience_sql_path.is_file()
        assert (TEMPLATES_DIR / spec.template / "body.html.j2").is_file()
        assert spec.salt == spec.id


def test_shipped_audience_sql_uses_only_the_run_parameters() -> None:
    # psycopg2 reads every % in the query: a literal one must be written %%. Hourly series also get run_ts.
    for spec in load_campaigns():
        text = spec.audience_sql_text().replace("%(run_date)s", "").replace("%%", "")
        if spec.hourly:
            text = text.replace("%(run_ts)s", "")
        assert "%" not in text, spec.audience_sql_path
        assert not text.rstrip().endswith(";"), spec.audience_sql_path


def test_shipped_audience_sql_states_its_grain() -> None:
    # Like the table files under include/sql: the first line says what one row is.
    for spec in load_campaigns():
        first = spec.audience_sql_text().splitlines()[0]
        assert first.startswith("-- grain: one row per "), spec.audience_sql_path


@pytest.mark.parametrize("expr", ["0 8 * * *", "*/15 0-6,22-23 1-31/2 jan-jun mon-fri", "0 0 1 */3 7",
                                  "5 4 * * SUN"])
def test_cron_accepts(expr: str) -> None:
    assert validate_cron(expr) == " ".join(expr.split())


@pytest.mark.parametrize("expr", ["", "* * * * * *", "0 8 * * 8", "0 8 0 * *", "0 8 * 13 *", "5-1 * * * *",
                                  "*/0 * * * *", "0 8 L * *", "0 8 * * 1#2"])
def test_cron_rejects(expr: str) -> None:
    with pytest.raises(ValueError):
        validate_cron(expr)


def test_loading_imports_neither_pandas_nor_sqlalchemy_nor_jinja() -> None:
    # What is imported is the check; how long loading takes belongs in `make bench`, not in a test.
    code = (
        "import sys\n"
        "from martech.campaigns import load_campaigns\n"
        "specs = load_campaigns()\n"
        "heavy = [m for m in ('pandas', 'sqlalchemy', 'jinja2', 'psycopg2') if m in sys.modules]\n"
        "print(len(specs), ' '.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, _, heavy = out.stdout.strip().partition(" ")
    assert heavy == ""
    assert int(count) >= 3


def test_steps_are_validated(campaigns_dir: Path) -> None:
    assert "strictly increasing" in errors_for(campaigns_dir, steps=[{"delay_days": 2}, {"delay_days": 1}])
    assert "lacks body.html.j2" in errors_for(campaigns_dir, steps=[{"delay_days": 0},
                                                                   {"delay_days": 3, "template": "nothing_here"}])
    assert "between 0 and 365" in errors_for(campaigns_dir, steps=[{"delay_days": -1}])
    assert "send_window" in errors_for(campaigns_dir, send_window={"start": "20:00", "end": "09:00"})


HOURLY = {"schedule": "0 * * * *", "series_key": "cart_id",
          "steps": [{"delay_hours": 0}, {"delay_hours": 24}, {"delay_hours": 72}]}


def test_hourly_series_loads_and_is_hourly(campaigns_dir: Path) -> None:
    spec = load_campaign(write(campaigns_dir, {**VALID, **HOURLY}))
    assert spec.hourly and spec.series_key == "cart_id" and spec.catch_up_hours == 6
    assert [s.delay.total_seconds() / 3600 for s in spec.steps] == [0, 24, 72]
    daily = load_campaign(write(campaigns_dir, {**VALID, "steps": [{"delay_days": 0}, {"delay_days": 2}]}))
    assert not daily.hourly and daily.steps[1].delay.days == 2
    # An hourly schedule without steps keeps daily runs (re-dispatching the day's run for quiet hours).
    assert not load_campaign(write(campaigns_dir, {**VALID, "schedule": "0 * * * *"})).hourly


@pytest.mark.parametrize(("changes", "expected"), [
    ({"steps": [{"delay_days": 1, "delay_hours": 24}]},
     "steps[0] sets both delay_days (1) and delay_hours (24); keep one: delay_hours for an hourly series"),
    ({"steps": [{"template": "birthday"}]}, "steps[0] needs a delay: add `delay_days: 1` (daily series)"),
    ({"steps": [{"delay_hours": -1}]}, "steps[0].delay_hours must be between 0 and 720 hours"),
    ({"steps": [{"delay_hours": 24}, {"delay_hours": 0}]}, "steps must have strictly increasing delays, got ['24h', '0h']"),
    ({"steps": [{"delay_hours": 0}, {"delay_days": 1}, {"delay_hours": 24}]},
     "steps must have strictly increasing delays, got ['0h', '1d', '24h']"),
    ({"schedule": "0 9 * * *"}, "steps use delay_hours (steps[0]), which needs an hourly schedule such as "
                                "'0 * * * *'; change the schedule or use delay_days, got schedule '0 9 * * *'"),
    ({"series_key": REMOVE}, "series_key is required for an hourly series: the audience column that names one pass"),
    ({"series_key": "Cart ID"}, "series_key must be the name of a column of the audience SQL (e.g. 'cart_id')"),
    ({"catch_up_hours": 0}, "catch_up_hours must be between 1 (only the hour a step is due) and 48 hours, got 0"),
    ({"steps": [{"delay_hours": 0, "wait": 1}]}, "steps[0].wait is not a known field; remove it or fix its spelling"
                                                 " (known fields: delay_days, delay_hours, template, subject)"),
])
def test_hourly_steps_are_validated(campaigns_dir: Path, changes: dict, expected: str) -> None:
    assert expected in errors_for(campaigns_dir, **{**HOURLY, **changes})


def test_series_key_belongs_to_hourly_series_only(campaigns_dir: Path) -> None:
    message = errors_for(campaigns_dir, series_key="cart_id", steps=[{"delay_days": 0}])
    assert "series_key only applies to a series with an hourly schedule ('0 * * * *'); remove it" in message


def test_a_goal_names_a_known_kpi_a_positive_target_and_a_date(campaigns_dir: Path) -> None:
    import datetime as dt

    from martech.campaigns.spec import GOAL_KPIS
    from martech.kpis.goals import KPI_SQL

    assert set(GOAL_KPIS) == set(KPI_SQL)  # every KPI a YAML may name is computed
    spec = load_campaign(write(campaigns_dir, {**VALID, "goal": {"kpi": "conversion_rate", "target": 0.3,
                                                                 "deadline": dt.date(2027, 3, 31)}}))
    assert spec.goal is not None and (spec.goal.target, spec.goal.deadline) == (0.3, dt.date(2027, 3, 31))
    assert "goal.kpi must be one of repeat_rate_new_customers, conversion_rate" in errors_for(
        campaigns_dir, goal={"kpi": "happiness", "target": 1, "deadline": "2027-03-31"})
    assert "goal.target must be a positive number" in errors_for(
        campaigns_dir, goal={"kpi": "click_rate", "target": 0, "deadline": "2027-03-31"})
    assert "goal.deadline must be a date as YYYY-MM-DD" in errors_for(
        campaigns_dir, goal={"kpi": "click_rate", "target": 0.1, "deadline": "next spring"})


def test_seed_list_settings_are_checked(campaigns_dir: Path) -> None:
    from martech.campaigns.spec import CampaignSpecError, load_settings

    (campaigns_dir / "_settings.yml").write_text("seed_list:\n  addresses: [qa@shop.example, QA@shop.example]\n")
    with pytest.raises(CampaignSpecError, match=r"seed_list.addresses \[1\] repeats 'qa@shop.example'"):
        load_settings(campaigns_dir)
    (campaigns_dir / "_settings.yml").write_text("seed_list:\n  addresses: [qa@shop.example]\n")
    assert load_settings(campaigns_dir).seed_list.addresses == ("qa@shop.example",)
