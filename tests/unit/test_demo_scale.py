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


def test_a_dag_run_shows_its_tasks_done_out_of_total_on_a_terminal(monkeypatch, capfd):
    import time
    from types import SimpleNamespace

    from martech.devtools import demo

    monkeypatch.setattr("rich.console.Console.is_terminal", property(lambda self: True))
    monkeypatch.setattr(demo, "_tasks_finished", lambda dag_id, logical: (2, "validate_raw"))
    dag = SimpleNamespace(dag_id="ingest", tasks=[object()] * 6)
    with demo._task_progress(dag, None):
        time.sleep(1.5)  # the bar polls twice a second
    out = capfd.readouterr().out
    assert "ingest" in out and "2/6" in out and "validate_raw" in out


def test_no_bar_when_the_output_is_not_a_terminal(monkeypatch, capfd):
    from types import SimpleNamespace

    from martech.devtools import demo

    monkeypatch.setattr("rich.console.Console.is_terminal", property(lambda self: False))
    with demo._task_progress(SimpleNamespace(dag_id="ingest", tasks=[object()]), None):
        pass
    assert capfd.readouterr().out == ""
