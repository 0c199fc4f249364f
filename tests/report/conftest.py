"""The report tests' warehouse: a few rows in every table the report reads (martech.testing.report_data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from martech.testing import report_data


@pytest.fixture(scope="module")
def report_warehouse(module_warehouse):
    report_data.seed(module_warehouse.engine)
    return module_warehouse


@pytest.fixture()
def outbox_previews(tmp_path: Path) -> Path:
    """An outbox previews folder with one mail, and a file next to it that must never be served."""
    (tmp_path / "secret.eml").write_text("not a preview")
    return report_data.write_preview(tmp_path / "previews")
