"""The report and the plugin's app on a small warehouse: every figure filled, pages, previews, authentication."""

from __future__ import annotations

import re
from email.message import EmailMessage

import pytest
from fastapi.testclient import TestClient

from martech.kpis.report import FIGURES, build_report, write_report
from martech.kpis.report.app import PREFIX, create_app
from martech.testing.report_data import D2, RUN_DATE

pytestmark = pytest.mark.integration


def _client(report_warehouse, previews, tmp_path, *, anonymous: bool = False) -> TestClient:
    from airflow.api_fastapi.core_api.security import get_user

    app = create_app(user=get_user, engine=lambda: report_warehouse.engine, report_file=lambda: tmp_path / "none.html",
                     previews_dir=lambda: previews)
    if not anonymous:
        app.dependency_overrides[get_user] = lambda: "tester"
    return TestClient(app, root_path="")


def test_every_figure_is_drawn_from_the_data_and_names_its_tables(report_warehouse):
    html = build_report(report_warehouse.engine, RUN_DATE)
    for fig in FIGURES:
        block = re.search(rf'<figure id="{fig.key}".*?</figure>', html, re.S)
        assert block, fig.key
        assert "<svg" in block.group(0) and "Source: <code>" in block.group(0)
        assert not re.search(r"No .* yet|Fewer than|No campaign|No contact", block.group(0)), fig.key
    assert "<script" not in html and not re.search(r"""(src|href)=["']?(https?:)?//""", html)
    assert "winback" in html and "welcome" in html


def test_campaign_goals_show_value_target_and_progress(report_warehouse):
    html = build_report(report_warehouse.engine, RUN_DATE)
    block = re.search(r'<section id="goals".*?</section>', html, re.S)
    assert block and "Source: <code>kpis.campaign_goals</code>" in block.group(0)
    welcome = re.search(r'<tr data-goal="welcome">.*?</tr>', block.group(0), re.S).group(0)
    assert "repeat_rate_new_customers" in welcome and ">0.2<" in welcome and ">0.25<" in welcome
    assert 'value="0.8"' in welcome and "80 %" in welcome and "on the way" in welcome
    winback = re.search(r'<tr data-goal="winback">.*?</tr>', block.group(0), re.S).group(0)
    assert "—" in winback and "no data" in winback


def test_write_report_replaces_the_file(report_warehouse, tmp_path):
    path = write_report(report_warehouse.engine, RUN_DATE, tmp_path / "r" / "report.html")
    assert path.read_text().startswith("<!doctype html>") and not list(path.parent.glob("*.tmp"))


def test_anonymous_requests_are_refused(report_warehouse, outbox_previews, tmp_path):
    client = _client(report_warehouse, outbox_previews, tmp_path, anonymous=True)
    for url in ("/report", "/campaigns/campaign_winback", f"/previews/winback/winback-{D2}/a-1.eml"):
        assert client.get(url).status_code == 401, url


def test_report_and_campaign_page(report_warehouse, outbox_previews, tmp_path):
    client = _client(report_warehouse, outbox_previews, tmp_path)
    assert client.get("/report").text.count("<svg") == len(FIGURES)
    page = client.get("/campaigns/campaign_winback")
    assert page.status_code == 200
    for section in ("runs", "audience", "exclusions", "uplift", "previews"):
        assert f'id="{section}"' in page.text
    assert f'src="{PREFIX}/previews/winback/winback-{D2}/a-1.eml"' in page.text
    assert "We miss you" in page.text and 'sandbox=""' in page.text
    assert client.get("/campaigns/kpis").status_code == 404


def test_previews_are_served_sandboxed_and_only_from_the_previews_folder(report_warehouse, outbox_previews,
                                                                          tmp_path):
    hostile = EmailMessage()
    hostile["Subject"] = "x"
    hostile.set_content("x")
    hostile.add_alternative("<script>alert(1)</script><img src='https://tracker.example/p.gif'>", subtype="html")
    (outbox_previews / "winback" / f"winback-{D2}" / "b-1.eml").write_bytes(hostile.as_bytes())
    client = _client(report_warehouse, outbox_previews, tmp_path)
    ok = client.get(f"/previews/winback/winback-{D2}/b-1.eml")
    assert ok.status_code == 200 and ok.headers["content-type"] == "text/html; charset=utf-8"
    csp = ok.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "default-src 'none'" in csp and "script-src" not in csp
    assert ok.headers["x-content-type-options"] == "nosniff"
    for bad in ("/previews/winback/..%2F..%2Fsecret.eml/a-1.eml", "/previews/..%2F/x/secret.eml",
                f"/previews/winback/winback-{D2}/..%2F..%2F..%2Fsecret.eml", "/previews/winback/winback-x/a-1.eml",
                f"/previews/winback/winback-{D2}/a-1.txt", f"/previews/%2Fetc/winback-{D2}/a-1.eml"):
        assert client.get(bad).status_code == 404, bad
