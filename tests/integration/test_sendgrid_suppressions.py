"""SendGrid's own suppression lists end up in campaigns.suppressions through the email-events stage."""

from __future__ import annotations

from datetime import date

import pytest

pytestmark = pytest.mark.integration
RUN = date(2026, 3, 1)


def test_sendgrid_lists_are_merged_into_suppressions_by_the_events_stage(clean_warehouse, warehouse,
                                                                          tmp_path, monkeypatch) -> None:
    import sqlalchemy as sa

    from martech import pipeline
    from martech.testing.fake_sendgrid import FakeSendGrid
    from martech.warehouse import Warehouse

    with FakeSendGrid() as sg:
        sg.state.suppression_lists["bounces"] = [{"created": 1_700_000_000, "email": "Hard@Bounce.example",
                                                  "reason": "550", "status": "5.1.1"}]
        sg.state.suppression_lists["asm_7"] = ["group@example.com"]
        settings = {"name": "sendgrid", "api_key": "SG.x", "host": sg.url, "asm_group_id": 7}
        with Warehouse(warehouse.url, transport_settings=settings) as wh:
            first = pipeline.ingest_events(wh, RUN, folder=tmp_path)
            again = pipeline.ingest_events(wh, RUN, folder=tmp_path)
    assert first["suppressed"] == 2 and again["suppressed"] == 0
    with clean_warehouse.connect() as conn:
        rows = conn.execute(sa.text("select email, reason, source from campaigns.suppressions order by 1")).all()
    assert [tuple(r) for r in rows] == [("group@example.com", "unsubscribe", "sendgrid:asm_group_7"),
                                        ("hard@bounce.example", "bounce", "sendgrid:bounces")]
