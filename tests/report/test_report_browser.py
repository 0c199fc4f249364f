"""The report in the Airflow UI, in headless Chromium: log in, open it from the navigation, every plot drawn.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); without them this test fails,
it does not skip. Screenshots go to ``<test tmp dir>/screenshots/`` and are copied to
``.martech/test-artifacts/report-browser/`` (kept after the run).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import pytest

from martech import paths
from martech.kpis.report import FIGURES, write_report
from martech.testing.report_data import RUN_DATE, write_data_docs, write_preview

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ARTIFACTS = paths.PROJECT_ROOT / ".martech" / "test-artifacts" / "report-browser"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000")
_DAG = '''
from airflow.sdk import dag


@dag(dag_id="campaign_winback", schedule=None, tags=["martech"])
def campaign_winback():
    pass


campaign_winback()
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if not path:
        pytest.fail(f"{name} is missing: apt-get install -y chromium chromium-driver (.ci/run does it)")
    return path


@pytest.fixture(scope="module")
def api_server(report_warehouse, tmp_path_factory):
    """``airflow api-server`` with the martech plugin on a free port, its own SQLite metadata and one DAG."""
    base = tmp_path_factory.mktemp("airflow")
    home, dags, outbox, mhome = base / "airflow", base / "dags", base / "outbox", base / "martech"
    for d in (home, dags, outbox, mhome):
        d.mkdir()
    (dags / "campaign_winback.py").write_text(_DAG)
    write_preview(outbox / "previews")
    (home / "passwords.json").write_text(json.dumps({"admin": "report-test"}))
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(paths.PROJECT_ROOT / "plugins"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
           "MARTECH_WAREHOUSE_URL": report_warehouse.url, "MARTECH_HOME": str(mhome),
           "MARTECH_OUTBOX_DIR": str(outbox)}
    airflow = [sys.executable, "-m", "airflow"]
    for cmd in (["db", "migrate"], ["dags", "reserialize"]):
        res = subprocess.run(airflow + cmd, env=env, capture_output=True, text=True, timeout=240)
        assert res.returncode == 0, res.stderr[-3000:]
    # What the gates do (Data Docs of their validations) and the kpis DAG after rebuilding the tables.
    os.environ["MARTECH_HOME"], previous = str(mhome), os.environ.get("MARTECH_HOME")
    try:
        write_data_docs()
        write_report(report_warehouse.engine, RUN_DATE)
    finally:
        os.environ.pop("MARTECH_HOME") if previous is None else os.environ.update(MARTECH_HOME=previous)
    port = _free_port()
    log = (base / "api-server.log").open("w")
    proc = subprocess.Popen([*airflow, "api-server", "--port", str(port), "--host", "127.0.0.1"], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/v2/monitor/health", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"api-server did not start: {(base / 'api-server.log').read_text()[-3000:]}")
                time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_plugin_refuses_anonymous_requests(api_server):
    for path in ("/martech/report", "/martech/campaigns/campaign_winback"):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(api_server + path, timeout=10)
        assert err.value.code == 401, path


@pytest.fixture()
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = _binary("chromium")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=_binary("chromedriver")))
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float = 30):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # A page being replaced (a click that navigates) leaves elements stale for a moment: ask again.
    return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(condition)


def _shot(driver, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / name))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / name, ARTIFACTS / name)


def test_report_and_campaign_page_in_the_ui(api_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    shots = tmp_path / "screenshots"
    browser.get(api_server + "/")
    user = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "input[type=text], input[name=username]"))
    user.send_keys("admin")
    browser.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys("report-test", Keys.ENTER)

    # The navigation's Browse menu holds the report's entry.
    browse = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "button[title=Browse], [aria-label=Browse]"))
    # Before the login the UI probes its API and is refused (401): expected, and the only errors allowed.
    early = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert all("401 (Unauthorized)" in e["message"] for e in early), early
    browse.click()
    _wait(browser, lambda d: d.find_element(By.XPATH, "//*[normalize-space(text())='Marketing report']")).click()
    frame = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "iframe"))
    browser.switch_to.frame(frame)
    _wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "figure[data-figure] svg")) == len(FIGURES))
    for fig in FIGURES:
        svg = browser.find_element(By.CSS_SELECTOR, f"figure[data-figure={fig.key}] svg")
        drawn = svg.find_elements(By.CSS_SELECTOR, "path, rect, text, use")
        assert svg.size["width"] > 100 and svg.size["height"] > 50 and len(drawn) > 10, fig.key
    browser.switch_to.default_content()
    _shot(browser, shots, "01-report-in-navigation.png")
    browser.switch_to.frame(frame)
    browser.execute_script("arguments[0].scrollIntoView()",
                           browser.find_element(By.CSS_SELECTOR, "figure[data-figure=ab_variants]"))
    browser.switch_to.default_content()
    _shot(browser, shots, "02-report-variants-rfm.png")

    # The Data Docs, from the data-quality figure's link, served by the same app: styled, tables filled.
    browser.switch_to.frame(frame)
    link = browser.find_element(By.CSS_SELECTOR, "figure[data-figure=data_quality_trend] a[data-link=data-docs]")
    browser.execute_script("arguments[0].scrollIntoView()", link)
    link.click()
    rows = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#Validation-Results tbody tr[data-href]"))
    assert len(rows) == 2
    style = browser.execute_script  # computed styles show docs.css applied, toolbars show docs.js ran
    assert style("return getComputedStyle(document.querySelector('.alert-secondary')).backgroundColor") \
        == "rgb(226, 227, 229)"
    assert style("return getComputedStyle(document.querySelector('.row')).display") == "flex"
    assert style("return getComputedStyle(document.querySelector('.ge-failed-icon'), '::before').content") \
        == '"\u2716"'
    assert browser.find_elements(By.CSS_SELECTOR, "#Validation-Results .martech-toolbar input[type=search]")
    suites = browser.find_element(By.ID, "Expectation-Suites")
    assert not suites.is_displayed()
    browser.find_element(By.ID, "Expectation-Suites-tab").click()
    assert suites.is_displayed() and len(suites.find_elements(By.CSS_SELECTOR, "tbody tr")) == 2
    browser.find_element(By.ID, "Validation-Results-tab").click()
    browser.switch_to.default_content()
    _shot(browser, shots, "04-data-docs-index.png")
    browser.switch_to.frame(frame)
    failed = browser.find_element(By.CSS_SELECTOR, "#Validation-Results tr[data-href*=contacts]")
    assert failed.find_elements(By.CSS_SELECTOR, ".ge-failed-icon")
    failed.find_elements(By.TAG_NAME, "td")[1].click()  # the row, not its link: docs.js follows it
    _wait(browser, lambda d: "not-an-address" in d.find_element(By.TAG_NAME, "body").text)
    assert "Expectation Validation Result" in browser.find_element(By.TAG_NAME, "h4").text
    assert style("return getComputedStyle(document.querySelector('.card')).borderTopStyle") == "solid"
    passed = browser.find_elements(By.CSS_SELECTOR, ".hide-succeeded-validation-target-child")
    assert passed and all(p.is_displayed() for p in passed)
    browser.find_element(By.CSS_SELECTOR, "[data-martech-show=failed]").click()
    assert not any(p.is_displayed() for p in passed)  # "Failed Only" hides the expectations that passed
    browser.find_element(By.CSS_SELECTOR, "[data-martech-show=all]").click()
    browser.switch_to.default_content()
    _shot(browser, shots, "05-data-docs-validation.png")

    # The campaign page, from the campaign DAG's own tab.
    browser.get(api_server + "/dags/campaign_winback")
    _wait(browser, lambda d: d.find_element(By.XPATH, "//*[normalize-space(text())='Campaign']")).click()
    frame = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "iframe"))
    browser.switch_to.frame(frame)
    preview = _wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#previews iframe"))
    assert "Campaign winback" in browser.find_element(By.TAG_NAME, "h1").text
    assert browser.find_elements(By.CSS_SELECTOR, "figure[data-figure=uplift] svg path")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#audience tbody tr")) == 6
    browser.switch_to.frame(preview)  # the mail itself renders, sandboxed, inside the UI's own frame
    _wait(browser, lambda d: "Ten percent off this week." in d.find_element(By.TAG_NAME, "body").text)
    browser.switch_to.parent_frame()
    browser.execute_script("arguments[0].scrollIntoView()", preview)
    browser.switch_to.default_content()
    _shot(browser, shots, "03-campaign-page.png")

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors
    hosts = set()
    for entry in browser.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg["method"] == "Network.requestWillBeSent":
            u = urlparse(msg["params"]["request"]["url"])
            if u.scheme in ("http", "https", "ws", "wss"):
                hosts.add(u.hostname)
    assert hosts <= {"127.0.0.1", "localhost"}, hosts
