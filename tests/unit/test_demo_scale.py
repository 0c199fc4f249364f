"""``make demo`` runs ``martech demo``: its scale comes from MARTECH_DEMO_CUSTOMERS unless --customers says."""

from __future__ import annotations

import pytest

from martech import cli


@pytest.fixture
def demo_calls(monkeypatch):
    from martech.devtools import demo

    calls = []
    monkeypatch.setattr(demo, "run", lambda **kwargs: calls.append(kwargs) or 0)
    return calls


def test_demo_takes_its_scale_from_the_environment(monkeypatch, demo_calls):
    monkeypatch.setenv("MARTECH_DEMO_CUSTOMERS", "1500")
    assert cli.main(["demo"]) == 0
    assert demo_calls[-1]["customers"] == 1500


def test_the_option_wins_over_the_environment(monkeypatch, demo_calls):
    monkeypatch.setenv("MARTECH_DEMO_CUSTOMERS", "1500")
    assert cli.main(["demo", "--customers", "300"]) == 0
    assert demo_calls[-1]["customers"] == 300


def test_default_scale_without_the_variable(monkeypatch, demo_calls):
    monkeypatch.delenv("MARTECH_DEMO_CUSTOMERS", raising=False)
    assert cli.main(["demo"]) == 0
    assert demo_calls[-1]["customers"] == 20_000


def test_a_bad_value_names_the_variable(monkeypatch, demo_calls):
    monkeypatch.setenv("MARTECH_DEMO_CUSTOMERS", "lots")
    with pytest.raises(SystemExit, match="MARTECH_DEMO_CUSTOMERS must be a whole number"):
        cli.main(["demo"])
    assert demo_calls == []
