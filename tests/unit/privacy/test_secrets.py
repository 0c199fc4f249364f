"""The public development secrets are refused when the transport delivers real email, and the tracked
tree holds no key, token or password."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from martech.campaigns import coupons, unsubscribe
from martech.privacy.secrets import DevelopmentSecretError

ROOT = Path(__file__).resolve().parents[3]
REAL = "x" * 48


@pytest.mark.parametrize("module", [unsubscribe, coupons], ids=["unsubscribe", "coupons"])
@pytest.mark.parametrize("transport", ["smtp", "sendgrid"])
def test_development_secret_is_refused_with_a_real_transport(module, transport) -> None:
    env = {"MARTECH_TRANSPORT": transport}
    with pytest.raises(DevelopmentSecretError, match=f"{module.SECRET_ENV} is not set"):
        module.secret_from_env(env)
    with pytest.raises(DevelopmentSecretError, match="public development secret"):
        module.secret_from_env({**env, module.SECRET_ENV: module.DEV_SECRET})
    assert module.secret_from_env({**env, module.SECRET_ENV: REAL}) == REAL


@pytest.mark.parametrize("module", [unsubscribe, coupons], ids=["unsubscribe", "coupons"])
def test_development_secret_is_the_fallback_for_the_outbox(module) -> None:
    assert module.secret_from_env({}) == module.DEV_SECRET
    assert module.secret_from_env({"MARTECH_TRANSPORT": "outbox"}) == module.DEV_SECRET


# What a leaked credential looks like; a value made only of placeholder words is not one.
_PATTERNS = {
    "SendGrid API key": re.compile(r"SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}"),
    "private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
    "password in a URL": re.compile(r"[a-z][a-z0-9+.-]*://[^\s/:@'\"]+:([^\s/@'\"]+)@"),
    "AWS access key": re.compile(r"\bAKIA[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
}
_PLACEHOLDERS = re.compile(r"^(secret|password|pass|pw|x+|\*+|change-?me.*|martech|airflow|postgres|"
                           r"\$\{[^}]*\}|<[^>]*>|\.\.\.)$", re.IGNORECASE)


def _findings(text: str) -> list[tuple[str, str]]:
    found = []
    for kind, pattern in _PATTERNS.items():
        for match in pattern.finditer(text):
            secret = match.group(1) if pattern.groups else match.group(0)
            # A URL assembled from template fields (f-strings, Jinja) is code, not a stored credential; a
            # placeholder may be written in brackets (user[:password]@host).
            if not _PLACEHOLDERS.match(secret.strip("[]")) and "{" not in match.group(0):
                found.append((kind, match.group(0)))
    return found


def test_scanner_finds_what_it_looks_for() -> None:
    # Assembled at run time, so that this file itself stays clean for the scan below.
    planted = ("key = 'SG." + "abcdefghijklmnopqrstuv.ABCDEFGHIJKLMNOPQRSTUVWXYZ0123'\n"
               "url = postgresql://app:" + "Zt9kq2LmP@db:5432/prod\n" + "-----BEGIN RSA " + "PRIVATE KEY-----\n")
    assert [kind for kind, _ in _findings(planted)] == ["SendGrid API key", "private key", "password in a URL"]
    assert _findings("postgresql://martech:martech@127.0.0.1/martech smtp://user:secret@mail.example") == []


def test_no_secret_in_the_tracked_tree() -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    paths = [ROOT / p for p in files.decode().split("\0") if p]
    assert len(paths) > 100
    leaks = []
    for path in paths:
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        leaks += [f"{path.relative_to(ROOT)}: {kind}: {hit}" for kind, hit in _findings(text)]
    assert leaks == []
