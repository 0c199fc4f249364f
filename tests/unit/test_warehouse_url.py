"""A bad MARTECH_WAREHOUSE_URL is reported in one sentence naming the variable, not a traceback."""

from __future__ import annotations

import socket

import pytest

from martech import cli


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("url", "what"), [
    ("garbage", "is not a URL"),
    ("mysql://a@b/c", "is not a PostgreSQL URL"),
    ("postgresql://postgres@127.0.0.1:5432", "names no database"),
    ("postgresql://nobody:secret@127.0.0.1:{port}/x", "does not answer: connection to server"),
])
def test_a_bad_url_is_one_sentence(monkeypatch, capsys, url, what):
    monkeypatch.setenv("MARTECH_WAREHOUSE_URL", url.format(port=_closed_port()))
    for command in (["warehouse", "url"], ["warehouse", "status"]):
        assert cli.main(command) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith("martech: MARTECH_WAREHOUSE_URL ") and what in err
        assert len(err.strip().splitlines()) == 1 and "secret" not in err
