"""The report and the plugin's app on a small warehouse: every figure filled, pages, previews, authentication."""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from martech.kpis.report import FIGURES, build_report, write_report
from martech.kpis.report.app import PREFIX, create_app
from martech.quality.docs_offline import MARKER, remote_references
from martech.testing.report_data import D2, RUN_DATE

pytestmark = pytest.mark.integration


def _client(report_warehouse, previews, tmp_path, *, anonymous: bool = False, report_file: Path | None = None,
            data_docs: Path | None = None) -> TestClient:
    from airflow.api_fastapi.core_api.security import get_user

    app = create_app(user=get_user, engine=lambda: report_warehouse.engine,
                     report_file=lambda: report_file or tmp_path / "none.html", previews_dir=lambda: previews,
                     data_docs_dir=lambda: data_docs or tmp_path / "no-docs")
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


def _section_rows(html: str, section: str, source: str, attribute: str) -> dict[str, str]:
    """The rows of one report section by their ``data-<attribute>`` key; the section must name its source."""
    block = re.search(rf'<section id="{section}".*?</section>', html, re.S)
    assert block and f"Source: <code>{source}</code>" in block.group(0)
    return dict(re.findall(rf'<tr data-{attribute}="([^"]+)">(.*?)</tr>', block.group(0), re.S))


def test_campaign_goals_show_value_target_and_progress(report_warehouse):
    rows = _section_rows(build_report(report_warehouse.engine, RUN_DATE), "goals", "kpis.campaign_goals", "goal")
    welcome = rows["welcome"]
    assert "repeat_rate_new_customers" in welcome and ">0.2<" in welcome and ">0.25<" in welcome
    assert 'value="0.8"' in welcome and "80 %" in welcome and "on the way" in welcome
    winback = rows["winback"]
    assert "—" in winback and "no data" in winback


def test_send_time_comparison_shows_both_arms_and_the_difference(report_warehouse):
    rows = _section_rows(build_report(report_warehouse.engine, RUN_DATE), "send_time",
                         "kpis.send_time_comparison", "send-time")
    sto = rows["abandoned_cart:sto"]
    assert "45.0 %" in sto and "+15.0 pp (+6.0 to +24.0)" in sto and "+1.0 pp (-3.0 to +5.0)" in sto
    fixed = rows["abandoned_cart:fixed"]
    assert "30.0 %" in fixed and "—" in fixed


def test_write_report_replaces_the_file(report_warehouse, tmp_path, monkeypatch):
    path = write_report(report_warehouse.engine, RUN_DATE, tmp_path / "r" / "report.html")
    assert path.read_text().startswith("<!doctype html>") and not list(path.parent.glob("*.tmp"))
    monkeypatch.chdir(tmp_path)  # martech report --out report.html --open: the browser needs a file URL
    assert write_report(report_warehouse.engine, RUN_DATE, Path("here.html")).as_uri() == \
        (tmp_path / "here.html").resolve().as_uri()


def test_anonymous_requests_are_refused(report_warehouse, outbox_previews, tmp_path):
    client = _client(report_warehouse, outbox_previews, tmp_path, anonymous=True)
    for url in ("/report", "/campaigns/campaign_winback", f"/previews/winback/winback-{D2}/a-1.eml",
                "/data-docs/index.html", "/data-docs/static/martech/docs.css"):
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


@pytest.fixture()
def docs_site(tmp_path: Path) -> Path:
    """A Data Docs folder: a rewritten index, a page GX wrote before the rewriting existed, a file beside it."""
    site = tmp_path / "data_docs"
    page = site / "validations" / "demo.contacts" / "demo:2026-06-02" / "20260602T000000.000000Z" / "p.html"
    page.parent.mkdir(parents=True)
    (site / "static" / "images").mkdir(parents=True)
    (site / "static" / "images" / "logo-long.png").write_bytes(b"\x89PNG")
    (site / "index.html").write_text(f"<!DOCTYPE html><html><head>{MARKER}</head><body>index</body></html>")
    page.write_text('<!DOCTYPE html><html><head><link rel="stylesheet" href="https://cdn.example/b.css">'
                    '<script src="https://cdn.example/jquery.js"></script></head><body><img src='
                    '"https://assets.example/logo-long.png" alt="GX"><script>$(".x").fadeIn()</script>'
                    "not-an-address</body></html>")
    (site / "results.json").write_text("{}")
    (site / ".docs.lock").write_text("")
    (tmp_path / "secret.html").write_text("secret")
    (site / "validations" / "out.html").symlink_to(tmp_path / "secret.html")
    return site


def test_the_report_links_the_data_docs_the_app_serves(report_warehouse, outbox_previews, tmp_path, docs_site,
                                                       monkeypatch):
    monkeypatch.setenv("MARTECH_DATA_DOCS_DIR", str(docs_site))
    live = _client(report_warehouse, outbox_previews, tmp_path, data_docs=docs_site).get("/report").text
    assert f'<a data-link="data-docs" href="{PREFIX}/data-docs/index.html">' in live
    # The kpis DAG's file links them relative to itself (both under MARTECH_HOME); the app points it at itself.
    written = write_report(report_warehouse.engine, RUN_DATE, tmp_path / "reports" / "report.html")
    assert '<a data-link="data-docs" href="../data_docs/index.html">' in written.read_text()
    served = _client(report_warehouse, outbox_previews, tmp_path, report_file=written, data_docs=docs_site)
    assert f'<a data-link="data-docs" href="{PREFIX}/data-docs/index.html">' in served.get("/report").text


def test_data_docs_are_served_from_their_folder_only_and_load_nothing_else(report_warehouse, outbox_previews,
                                                                         tmp_path, docs_site):
    client = _client(report_warehouse, outbox_previews, tmp_path, data_docs=docs_site)
    index = client.get("/data-docs/index.html")
    assert index.status_code == 200 and index.text.endswith("index</body></html>")
    assert index.headers["content-type"] == "text/html; charset=utf-8"
    csp = index.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'self'" in csp
    assert index.headers["x-content-type-options"] == "nosniff"
    assert client.get("/data-docs", follow_redirects=False).headers["location"] == f"{PREFIX}/data-docs/index.html"

    # A page GX wrote without the rewrite is rewritten on the way out; the assets come from the package.
    old = client.get("/data-docs/validations/demo.contacts/demo%3A2026-06-02/20260602T000000.000000Z/p.html")
    assert old.status_code == 200 and "not-an-address" in old.text
    assert remote_references(old.text) == [] and "fadeIn" not in old.text
    assert 'href="../../../../static/martech/docs.css"' in old.text
    assert 'src="../../../../static/images/logo-long.png"' in old.text
    css = client.get("/data-docs/static/martech/docs.css")
    assert css.status_code == 200 and css.headers["content-type"] == "text/css; charset=utf-8"
    assert client.get("/data-docs/static/images/logo-long.png").headers["content-type"] == "image/png"

    for bad in ("/data-docs/..%2Fsecret.html", "/data-docs/%2E%2E/secret.html", "/data-docs/%2Ftmp%2Fsecret.html",
                "/data-docs/validations/%2E%2E/%2E%2E/secret.html", "/data-docs/validations/out.html",
                "/data-docs/results.json", "/data-docs/.docs.lock", "/data-docs/static/martech/other.js",
                "/data-docs/validations//p.html", "/data-docs/missing.html"):
        assert client.get(bad).status_code == 404, bad
    empty = _client(report_warehouse, outbox_previews, tmp_path).get("/data-docs/index.html")
    assert empty.status_code == 404 and "No Data Docs yet" in empty.text
