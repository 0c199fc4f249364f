"""Where martech keeps its files.

Everything a local run produces lives under one folder, ``.martech/`` in the project root unless
``MARTECH_HOME`` says otherwise: the embedded warehouse, Airflow's SQLite metadata, the landing folders
the simulator writes source files to, and the outbox.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
INCLUDE_DIR = PACKAGE_DIR.parent
PROJECT_ROOT = INCLUDE_DIR.parent
SQL_DIR = INCLUDE_DIR / "sql"
TEMPLATES_DIR = INCLUDE_DIR / "templates"
CAMPAIGNS_DIR = INCLUDE_DIR / "campaigns"
DAGS_DIR = PROJECT_ROOT / "dags"


def home() -> Path:
    """The folder for local state (created on first use)."""
    path = Path(os.environ.get("MARTECH_HOME") or PROJECT_ROOT / ".martech").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def campaigns_dir() -> Path:
    """Where the campaign YAML files are (``MARTECH_CAMPAIGNS_DIR``, else ``include/campaigns``)."""
    return Path(os.environ.get("MARTECH_CAMPAIGNS_DIR") or CAMPAIGNS_DIR)


def landing_dir() -> Path:
    """Where file sources land (CRM exports, email-event feeds)."""
    return Path(os.environ.get("MARTECH_LANDING_DIR") or home() / "landing")


def outbox_dir() -> Path:
    """Where the outbox transport writes rendered emails."""
    return Path(os.environ.get("MARTECH_OUTBOX_DIR") or home() / "outbox")


def models_dir() -> Path:
    """Where fitted model artifacts are versioned (one folder per model and version)."""
    return Path(os.environ.get("MARTECH_MODELS_DIR") or home() / "models")


def data_docs_dir() -> Path:
    """Where Great Expectations' Data Docs are built (open ``index.html`` in a browser)."""
    return Path(os.environ.get("MARTECH_DATA_DOCS_DIR") or home() / "data_docs")


def quality_store_dir() -> Path:
    """Where the expectation suites and validation results behind the Data Docs are kept (JSON)."""
    return home() / "gx"
