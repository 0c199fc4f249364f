"""The outbox transport: RFC 5322 files, idempotent rewrites, an index per run."""

from __future__ import annotations

import email
from datetime import datetime, timezone
from email import policy
from pathlib import Path

from martech.campaigns.transports import (
    BaseTransport,
    OutboundMessage,
    OutboxTransport,
    Transport,
    build_email,
)

NOW = datetime(2024, 6, 1, 9, 0, tzinfo=timezone.utc)


def message(send_id: str = "a" * 32, **changes) -> OutboundMessage:
    fields = dict(
        send_id=send_id, to="ann@example.com", sender="Shop Example <hello@shop.example>",
        subject="Hällo <Ann> & co", html="<p>Hi &lt;Ann&gt;</p>", text="Hi <Ann>", sent_at=NOW,
        headers={"List-Unsubscribe": f"<https://shop.example/unsubscribe?sid={send_id}>"},
        custom_args={"send_id": send_id, "campaign_id": "winback", "run_id": "2024-06-01",
                     "contact_id": "c-1", "variant": "b"},
    )
    return OutboundMessage(**{**fields, **changes})


def test_email_is_multipart_alternative_with_ids_in_headers() -> None:
    parsed = email.message_from_bytes(build_email(message()).as_bytes(), policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["Message-ID"] == f"<{'a' * 32}@shop.example>"
    assert parsed["Subject"] == "Hällo <Ann> & co"
    assert parsed["X-Martech-Send-Id"] == "a" * 32
    assert parsed["X-Martech-Contact-Id"] == "c-1"
    assert parsed["List-Unsubscribe"].strip().startswith("<https://shop.example/unsubscribe")
    assert parsed.get_body(("plain",)).get_content().strip() == "Hi <Ann>"


def test_same_message_gives_the_same_bytes() -> None:
    assert build_email(message()).as_bytes() == build_email(message()).as_bytes()


def test_outbox_writes_once_and_rewrites_identically(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path)
    assert isinstance(outbox, Transport)
    message_id = outbox.send(message())
    path = tmp_path / "winback" / "2024-06-01" / f"{'a' * 32}.eml"
    first = path.read_bytes()
    stat = path.stat()
    assert outbox.send(message()) == message_id
    assert path.read_bytes() == first
    assert path.stat().st_mtime_ns == stat.st_mtime_ns  # identical content is not rewritten
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temp files left


def test_index_lists_messages_escaped(tmp_path: Path) -> None:
    outbox = OutboxTransport(tmp_path)
    outbox.send_batch([message("b" * 32), message("a" * 32, to="bo@example.com")])
    outbox.finalize_run("winback", "2024-06-01")
    index = (tmp_path / "winback" / "2024-06-01" / "index.html").read_text()
    assert index.index("a" * 32) < index.index("b" * 32)
    assert "Hällo &lt;Ann&gt; &amp; co" in index
    assert f'href="{"a" * 32}.eml"' in index
    assert "bo@example.com" in index and "<td>b</td>" in index
    assert "2 message(s)" in index


def test_base_transport_reports_per_message_errors() -> None:
    class Flaky(BaseTransport):
        def send(self, message: OutboundMessage) -> str:
            if message.to.startswith("bad"):
                raise ConnectionError("refused")
            return "id-" + message.send_id

    results = Flaky().send_batch([message("1"), message("2", to="bad@example.com")])
    assert [r.ok for r in results] == [True, False]
    assert results[1].error == "ConnectionError: refused"


def test_long_list_unsubscribe_stays_plain_ascii_on_the_wire() -> None:
    url = "https://shop.example/unsubscribe?sid=" + "a" * 32 + "&token=v1." + "Z" * 160
    value = f"<{url}>, <mailto:unsubscribe@shop.example?subject=unsubscribe>"
    raw = build_email(message(headers={"List-Unsubscribe": value})).as_bytes()
    header_line = next(line for line in raw.split(b"\r\n") if line.startswith(b"List-Unsubscribe:"))
    assert b"=?utf-8?" not in header_line
    assert header_line == b"List-Unsubscribe: " + value.encode()
