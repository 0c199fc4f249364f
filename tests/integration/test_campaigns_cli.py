"""``martech campaigns validate`` and ``martech campaigns preview``."""

from __future__ import annotations

import datetime as dt
import email
import shutil
from email import policy
from pathlib import Path

import pytest
import sqlalchemy as sa

from martech import cli, paths
from martech.testing.campaigns import write_promo_campaign

pytestmark = pytest.mark.integration


def test_validate_exits_0_on_the_shipped_campaigns(capsys) -> None:
    assert cli.main(["campaigns", "validate"]) == 0
    assert "0 problem(s)" in capsys.readouterr().out


def test_validate_lists_every_problem_of_every_file_and_exits_1(tmp_path: Path, monkeypatch, capsys) -> None:
    folder = tmp_path / "campaigns"
    shutil.copytree(paths.CAMPAIGNS_DIR, folder)
    vip = folder / "vip.yml"
    vip.write_text(vip.read_text().replace("holdout_share: 0.1", "holdout_share: 2"))
    birthday = folder / "birthday.yml"
    birthday.write_text(birthday.read_text().replace("owner:", "ownr:", 1))
    monkeypatch.setenv("MARTECH_CAMPAIGNS_DIR", str(folder))
    assert cli.main(["campaigns", "validate"]) == 1
    out = capsys.readouterr()
    problems = out.err.strip().splitlines()
    assert any("vip.yml" in p and "holdout_share" in p for p in problems)
    assert any("birthday.yml" in p and "ownr" in p for p in problems)
    assert any("birthday.yml" in p and "owner" in p and "ownr" not in p for p in problems)  # the missing field too
    shipped = len([p for p in folder.glob("*.yml") if not p.name.startswith("_")])
    assert out.out.strip() == f"{shipped - 2} campaign file(s) valid, {len(problems)} problem(s)"


@pytest.fixture()
def promo_dir(tmp_path: Path, monkeypatch, warehouse_url: str) -> Path:
    folder = write_promo_campaign(tmp_path / "campaigns").parent
    monkeypatch.setenv("MARTECH_CAMPAIGNS_DIR", str(folder))
    monkeypatch.setenv("MARTECH_WAREHOUSE_URL", warehouse_url)
    monkeypatch.setenv("MARTECH_OUTBOX_DIR", str(tmp_path / "outbox"))
    return tmp_path / "outbox"


def test_preview_renders_the_latest_snapshot_to_the_outbox_and_sends_nothing(clean_warehouse, promo_dir, capsys):
    assert cli.main(["campaigns", "preview", "promo"]) == 1
    assert "no audience snapshot yet" in capsys.readouterr().err
    with clean_warehouse.begin() as conn:
        for run in (dt.date(2026, 4, 27), dt.date(2026, 5, 4)):
            conn.execute(sa.text(
                "insert into audiences.audience_members (campaign_id, run_id, run_date, contact_id, email,"
                " first_name, arm, variant, definition_hash, attributes) values ('promo', :r, :d, :c, :e, :f,"
                " 'treatment', :v, 'h', '{\"is_customer\": true}')"),
                [{"r": run.isoformat(), "d": run, "c": f"c{i:02d}", "e": f"u{i}@example.com", "f": f"N{i}",
                  "v": "ab"[i % 2]} for i in range(6)])
    assert cli.main(["campaigns", "preview", "promo", "--contact", "2"]) == 0
    written = [Path(line) for line in capsys.readouterr().out.split()]
    assert sorted(p.name for p in written) == ["a-1.eml", "a-2.eml", "b-1.eml", "b-2.eml"]
    assert {p.parent for p in written} == {promo_dir / "previews" / "promo" / "2026-05-04"}
    subjects = {email.message_from_bytes(p.read_bytes(), policy=policy.default)["Subject"] for p in written}
    assert subjects == {"Hi N0", "Hi N2", "Hello N1", "Hello N3"}
    with clean_warehouse.connect() as conn:
        assert conn.execute(sa.text("select count(*) from campaigns.send_ledger")).scalar_one() == 0
