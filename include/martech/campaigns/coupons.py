"""Unique coupon codes per recipient, registered in ``campaigns.coupons`` when the snapshot is built.

A code is derived from the send id and a secret (HMAC-SHA256), so it is the same on every rerun and
cannot be guessed from another customer's code. It is written in an alphabet without look-alike
characters (no 0/O, 1/I/L) as ``<PREFIX>-XXXX-XXXX-XXXX``: 12 characters from 31 give about 59 bits.
Should a code ever be taken already (by another send), the next candidate (``attempt`` + 1) is used;
a contact keeps the code it got first for a run, so reruns never change it.

Validity: from the start of the run date (UTC) for ``validity_days`` days; ``expires_at`` is the first
instant the code no longer works, ``valid_until`` the last day it does.

Holdout members get the code they would have got, like the variant: it is never sent, so it can never
be redeemed. Count issued coupons through the send ledger (``send_id``, status ``sent``).

Kinds: ``coupon`` (a promo code) and ``loyalty_card`` (a card number valid for the same kind of window).
A member can hold one of each per run; a card's code is derived from the send id and its kind, so it
never repeats the coupon's random part.

The secret comes from ``MARTECH_COUPON_SECRET`` (a development secret with a warning when unset).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from martech.db import copy_rows
from martech.privacy.secrets import configured_secret

__all__ = [
    "ALPHABET",
    "COUPON_COLUMNS",
    "SECRET_ENV",
    "Coupon",
    "CouponRequest",
    "coupon_code",
    "coupon_window",
    "is_well_formed",
    "issue_coupons",
    "normalize_code",
    "secret_from_env",
]

log = logging.getLogger("martech.campaigns.coupons")

# 31 characters: digits 2-9 and letters without I, L and O (no 0/O or 1/I/l confusion when typed).
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
GROUPS = 3
GROUP_LENGTH = 4
SECRET_ENV = "MARTECH_COUPON_SECRET"
DEV_SECRET = "martech-dev-coupon-secret-not-for-production"
MAX_ATTEMPTS = 20

COUPON_COLUMNS = ("code", "campaign_id", "run_id", "contact_id", "send_id", "discount_percent",
                  "valid_from", "expires_at", "kind")
KINDS = ("coupon", "loyalty_card")

_warned = False
_CODE = re.compile(rf"^[A-Z0-9]{{1,12}}(?:-[{ALPHABET}]{{{GROUP_LENGTH}}}){{{GROUPS}}}$")


def secret_from_env(environ: Mapping[str, str] | None = None) -> str:
    """``MARTECH_COUPON_SECRET``, or the development secret with a loud warning (once per process)."""
    global _warned
    value = configured_secret(SECRET_ENV, DEV_SECRET, environ)
    if value:
        return value
    if not _warned:
        _warned = True
        log.warning("!!! %s is not set: coupon codes are derived from the PUBLIC development secret and "
                    "can be predicted. Set %s before sending real coupons. !!!", SECRET_ENV, SECRET_ENV)
    return DEV_SECRET


def coupon_code(send_id: str, secret: str | bytes, *, prefix: str, attempt: int = 0,
                kind: str = "coupon") -> str:
    """``<prefix>-XXXX-XXXX-XXXX``, a pure function of its arguments."""
    if not send_id:
        raise ValueError("coupon_code needs a send id")
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise ValueError("the coupon secret must not be empty")
    message = f"coupon|v1|{send_id}|{attempt}" if kind == "coupon" else f"{kind}|v1|{send_id}|{attempt}"
    digest = hmac.new(key, message.encode(), hashlib.sha256).digest()
    # 96 bits for 12 base-31 digits (31**12 < 2**60): the modulo bias is below 2**-36.
    n = int.from_bytes(digest[:12], "big")
    chars = []
    for _ in range(GROUPS * GROUP_LENGTH):
        n, r = divmod(n, len(ALPHABET))
        chars.append(ALPHABET[r])
    groups = ["".join(chars[i:i + GROUP_LENGTH]) for i in range(0, len(chars), GROUP_LENGTH)]
    return "-".join([prefix, *groups])


def normalize_code(text: str) -> str:
    """A code as typed by a customer (any case, stray spaces) in its stored form."""
    return re.sub(r"\s+", "", text).upper()


def is_well_formed(code: str) -> bool:
    return bool(_CODE.match(code))


def coupon_window(run_date: date, validity_days: int) -> tuple[datetime, datetime]:
    """(valid_from, expires_at): midnight UTC of the run date, and ``validity_days`` later."""
    start = datetime.combine(run_date, time(0), tzinfo=timezone.utc)
    return start, start + timedelta(days=validity_days)


@dataclass(frozen=True)
class CouponRequest:
    """One member who needs a coupon for this run."""

    contact_id: str
    send_id: str
    discount_percent: int


@dataclass(frozen=True)
class Coupon:
    code: str
    campaign_id: str
    run_id: str
    contact_id: str
    send_id: str
    discount_percent: int
    valid_from: datetime
    expires_at: datetime
    kind: str = "coupon"

    @property
    def valid_until(self) -> date:
        """The last day (UTC) on which the code works."""
        return (self.expires_at - timedelta(microseconds=1)).astimezone(timezone.utc).date()

    def row(self) -> tuple[Any, ...]:
        return tuple(getattr(self, c) for c in COUPON_COLUMNS)

    def as_attribute(self) -> dict[str, Any]:
        """What the templates get as ``coupon``."""
        return {
            "code": self.code,
            "discount_percent": self.discount_percent,
            "valid_from": self.valid_from.astimezone(timezone.utc).date().isoformat(),
            "valid_until": self.valid_until.isoformat(),
            "expires_at": self.expires_at.astimezone(timezone.utc).isoformat(),
        }


_EXISTING = sa.text("""
select
    c.code, c.contact_id, c.send_id, c.discount_percent, c.valid_from, c.expires_at,
    exists (
        select 1 from campaigns.send_ledger as l where l.send_id = c.send_id and l.status = 'sent'
    ) as sent
from campaigns.coupons as c
where c.campaign_id = :campaign_id and c.run_id = :run_id and c.kind = :kind
""")

_TAKEN = sa.text("select code from campaigns.coupons where code = any(cast(:codes as text[]))")

_DELETE = sa.text("delete from campaigns.coupons where code = any(cast(:codes as text[]))")

_UPDATE_TERMS = sa.text("""
update campaigns.coupons as c
set discount_percent = u.discount_percent, valid_from = :valid_from, expires_at = :expires_at
from unnest(cast(:codes as text[]), cast(:percents as integer[])) as u(code, discount_percent)
where c.code = u.code
""")


def issue_coupons(conn: Connection, *, campaign_id: str, run_id: str, run_date: date, prefix: str,
                  validity_days: int, requests: Sequence[CouponRequest], secret: str | bytes,
                  kind: str = "coupon") -> dict[str, Coupon]:
    """Make ``campaigns.coupons`` hold exactly one coupon per requested member of the run; idempotent.

    Runs in the caller's transaction (the snapshot's, which holds the run's advisory lock).

    - A member who already has a coupon for the run keeps its code; its terms (percent, validity)
      follow the definition unless the coupon was already sent, in which case they stay as mailed.
    - A new member gets the first candidate code not taken by another send.
    - Coupons of contacts no longer in the snapshot are deleted, unless they were already sent.

    ``kind`` (``coupon`` or ``loyalty_card``) keeps a run's cards apart from its coupons.

    Returns the run's coupons (of that kind) by contact id.
    """
    if kind not in KINDS:
        raise ValueError(f"coupon kind must be one of {', '.join(KINDS)}, got {kind!r}")
    valid_from, expires_at = coupon_window(run_date, validity_days)
    existing: dict[str, Any] = {r.contact_id: r for r in conn.execute(
        _EXISTING, {"campaign_id": campaign_id, "run_id": run_id, "kind": kind})}
    wanted = {r.contact_id: r for r in requests}

    stale = sorted(r.code for cid, r in existing.items() if cid not in wanted and not r.sent)
    if stale:
        conn.execute(_DELETE, {"codes": stale})

    result: dict[str, Coupon] = {}
    retermed: list[Coupon] = []
    fresh: list[CouponRequest] = []
    for contact_id, req in wanted.items():
        old = existing.get(contact_id)
        if old is None:
            fresh.append(req)
            continue
        if old.sent:
            coupon = Coupon(old.code, campaign_id, run_id, contact_id, old.send_id, int(old.discount_percent),
                            old.valid_from, old.expires_at, kind)
        else:
            coupon = Coupon(old.code, campaign_id, run_id, contact_id, old.send_id, req.discount_percent,
                            valid_from, expires_at, kind)
            if (int(old.discount_percent), old.valid_from, old.expires_at) != (
                    req.discount_percent, valid_from, expires_at):
                retermed.append(coupon)
        result[contact_id] = coupon

    if retermed:
        # Terms are per run and the same for all, except the percent.
        conn.execute(_UPDATE_TERMS, {"codes": [c.code for c in retermed],
                                     "percents": [c.discount_percent for c in retermed],
                                     "valid_from": valid_from, "expires_at": expires_at})

    new = _allocate(conn, fresh, prefix=prefix, secret=secret, kind=kind)
    rows = [Coupon(new[r.contact_id], campaign_id, run_id, r.contact_id, r.send_id, r.discount_percent,
                   valid_from, expires_at, kind) for r in fresh]
    rows.sort(key=lambda c: c.code)
    copy_rows(conn, "campaigns.coupons", COUPON_COLUMNS, (c.row() for c in rows))
    result.update((c.contact_id, c) for c in rows)
    return result


def _allocate(conn: Connection, requests: Sequence[CouponRequest], *, prefix: str,
              secret: str | bytes, kind: str = "coupon") -> dict[str, str]:
    """A code per request, unique among themselves and not yet in ``campaigns.coupons``."""
    by_contact = {r.contact_id: r for r in requests}
    attempts = dict.fromkeys(by_contact, 0)
    codes = {cid: coupon_code(r.send_id, secret, prefix=prefix, kind=kind) for cid, r in by_contact.items()}
    order = sorted(codes)  # the lowest contact id keeps a code two requests share
    pending = set(codes)   # contacts whose current candidate is not checked against the table yet
    for _ in range(MAX_ATTEMPTS):
        if not pending:
            return codes
        taken = set(conn.execute(_TAKEN, {"codes": [codes[c] for c in sorted(pending)]}).scalars())
        owners: set[str] = set()
        clashes: list[str] = []
        for contact_id in order:
            code = codes[contact_id]
            if code in owners or (contact_id in pending and code in taken):
                clashes.append(contact_id)
            else:
                owners.add(code)
        for contact_id in clashes:
            attempts[contact_id] += 1
            codes[contact_id] = coupon_code(by_contact[contact_id].send_id, secret, prefix=prefix,
                                            attempt=attempts[contact_id], kind=kind)
        if clashes:
            log.info("coupon codes: %d candidate(s) already taken, drew the next ones", len(clashes))
        pending = set(clashes)
    raise RuntimeError(f"could not find free coupon codes after {MAX_ATTEMPTS} attempts; "
                       "is the coupon alphabet or length misconfigured?")
