"""Erase one person (GDPR Art. 17) from every table and file the project writes.

The person is found by contact id or address in the CRM and shop tables; every address, contact id and
customer id found that way is then removed:

- rows of the pipeline's tables that carry one of them are deleted, except in the tables the KPIs count
  (the send ledger, audience members, email events), where the row stays as a pseudonymous tombstone:
  address and name blanked, contact id replaced by ``erased:<hash>``;
- quality-result samples lose the matching values; quarantined rows holding them are deleted;
- files under ``MARTECH_HOME`` (outbox, previews, Data Docs) that mention them are deleted, landed export
  files are rewritten without the person's lines (their batch record follows, so they are not re-loaded).

A keyed hash of the normalised address goes on ``campaigns.do_not_contact``, which campaign eligibility
consults, so a later import of the same address is never mailed. ``campaigns.erasure_requests`` keeps
one row per request with counts only. The embedded warehouse's own storage and the source systems
(shop database, CRM) are outside this: PostgreSQL reclaims deleted rows on VACUUM, sources erase their own.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from martech.privacy.secrets import refuse_development_secret

SECRET_ENV = "MARTECH_ERASURE_SECRET"
DEV_SECRET = "martech-dev-erasure-secret-not-for-production"
SCHEMAS = ("raw", "staging", "marts", "audiences", "campaigns", "kpis")
OWN_TABLES = {"campaigns.do_not_contact", "campaigns.erasure_requests"}
# Counted by the KPIs: kept, without the person.
TOMBSTONES = {"campaigns.send_ledger", "audiences.audience_members", "staging.email_events", "raw.email_events"}
_ID_COLUMNS = ("contact_id", "customer_id", "shop_customer_id", "row_key", "merged_key", "source_ref")
_SKIP_DIRS = ("warehouse", "airflow")  # the database's own storage; Airflow's (checked to hold no addresses)


def secret(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    value = (environ.get(SECRET_ENV) or "").strip()
    refuse_development_secret(SECRET_ENV, value, DEV_SECRET, environ)
    return value or DEV_SECRET


def address_key(address: str, key: str | None = None) -> str:
    """The do-not-contact entry of an address: HMAC-SHA256 of its normalised form."""
    return hmac.new((key or secret()).encode(), address.strip().lower().encode(), hashlib.sha256).hexdigest()


def do_not_contact(conn: Connection) -> Callable[[str], bool]:
    """A test for "this address was erased": true when its keyed hash is on the do-not-contact list."""
    listed: set[str] = set()
    if _exists(conn, "campaigns.do_not_contact"):
        listed = set(conn.execute(sa.text("select address_hmac from campaigns.do_not_contact")).scalars())
    if not listed:
        return lambda address: False
    key = secret()
    return lambda address: address_key(address, key) in listed


@dataclass
class Person:
    emails: set[str] = field(default_factory=set)
    contact_ids: set[str] = field(default_factory=set)
    customer_ids: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)

    @property
    def ids(self) -> set[str]:
        return self.contact_ids | self.customer_ids

    def tokens(self) -> set[str]:
        return self.emails | self.ids

    def text_tokens(self) -> set[str]:
        """What is searched for inside free text: bare numbers (customer ids) only in id columns."""
        return {t for t in self.tokens() if not t.isdigit()}


def find_person(conn: Connection, *, contact_id: str | None = None, email: str | None = None) -> Person:
    """Every address and id the person goes by, followed through CRM contacts and shop customers."""
    p = Person(emails={email.strip().lower()} if email else set(), contact_ids={contact_id} if contact_id else set())
    for _ in range(3):  # contact -> address -> shop customer -> address ...: a fixed point in few steps
        before = (len(p.emails), len(p.contact_ids), len(p.customer_ids))
        for table, cid, cust in (("staging.contacts", "contact_id", "customer_id"),
                                 ("raw.crm_contacts", "contact_id", "shop_customer_id"),
                                 ("raw.hubspot_contacts", None, None),
                                 ("staging.customers", None, "customer_id"),
                                 ("raw.shop_customers", None, "customer_id")):
            if not _exists(conn, table):
                continue
            cols = _columns(conn, table)
            conds = ["lower(btrim(email)) = any(:emails)"] if "email" in cols else []
            if cid and cid in cols:
                conds.append(f"{cid}::text = any(:contacts)")
            if cust and cust in cols:
                conds.append(f"{cust}::text = any(:customers)")
            if not conds:
                continue
            wanted = [c for c in ("email", cid, cust, "first_name", "last_name") if c and c in cols]
            rows = conn.execute(sa.text(f"select {', '.join(wanted)} from {table} where {' or '.join(conds)}"),
                                {"emails": list(p.emails), "contacts": list(p.contact_ids),
                                 "customers": list(p.customer_ids)}).mappings()
            for r in rows:
                if r.get("email"):
                    p.emails.add(str(r["email"]).strip().lower())
                if cid and r.get(cid):
                    p.contact_ids.add(str(r[cid]))
                if cust and r.get(cust):
                    p.customer_ids.add(str(r[cust]))
                p.names.update(str(r[n]) for n in ("first_name", "last_name") if r.get(n))
        if before == (len(p.emails), len(p.contact_ids), len(p.customer_ids)):
            break
    return p


def erase_person(engine: Engine, *, request_id: str, run_date: dt.date, home: Path,
                 contact_id: str | None = None, email: str | None = None) -> dict[str, int]:
    """Carry out one request; returns rows or files touched per table or file kind. Idempotent."""
    if bool(contact_id) == bool(email):
        raise ValueError("an erasure request names the person by exactly one of contact_id or email")
    key = secret()
    with engine.begin() as conn:
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext('martech.erase'))"))
        person = find_person(conn, contact_id=contact_id, email=email)
        counts: dict[str, int] = {}
        if person.tokens():
            for table in _tables(conn):
                n = _erase_table(conn, table, person)
                if n:
                    counts[table] = n
        counts.update(_erase_files(conn, home, person))
        for address in sorted(person.emails):
            conn.execute(sa.text(
                "insert into campaigns.do_not_contact (address_hmac, request_id, listed_on)"
                " values (:h, :r, :d) on conflict (address_hmac) do nothing"),
                {"h": address_key(address, key), "r": request_id, "d": run_date})
        counts["campaigns.do_not_contact"] = len(person.emails)
        conn.execute(sa.text(
            "insert into campaigns.erasure_requests (request_id, run_date, identified_by, counts)"
            " values (:r, :d, :by, cast(:c as jsonb)) on conflict (request_id) do update"
            " set counts = (campaigns.erasure_requests.counts || excluded.counts)"),
            {"r": request_id, "d": run_date, "by": "contact_id" if contact_id else "email",
             "c": json.dumps(counts)})
    return counts


def _exists(conn: Connection, table: str) -> bool:
    return conn.execute(sa.text("select to_regclass(:t) is not null"), {"t": table}).scalar_one()


def _columns(conn: Connection, table: str) -> dict[str, str]:
    schema, name = table.split(".")
    return dict(conn.execute(sa.text(
        "select column_name, data_type from information_schema.columns where table_schema = :s"
        " and table_name = :t"), {"s": schema, "t": name}).all())


def _tables(conn: Connection) -> list[str]:
    return [t for t in conn.execute(sa.text(
        "select table_schema || '.' || table_name from information_schema.tables"
        " where table_schema = any(:s) and table_type = 'BASE TABLE' order by 1"), {"s": list(SCHEMAS)}).scalars()
        if t not in OWN_TABLES]


def _match(cols: Mapping[str, str], person: Person) -> tuple[str, dict[str, object]]:
    """A condition true for rows that name the person in an id column or any text or jsonb column."""
    conds = [f"{c}::text = any(:ids)" for c in _ID_COLUMNS if c in cols]
    conds += [f"lower(btrim({c})) = any(:emails)" for c in cols if "email" in c and cols[c] == "text"]
    texts = [c for c, kind in cols.items() if kind in ("text", "jsonb", "json", "character varying")]
    pattern = "|".join(re.escape(t) for t in sorted(person.text_tokens(), key=len, reverse=True))
    # Word boundaries: contact id 'C12' must not match 'C123'. No tokens, no pattern: '' matches everything.
    if pattern:
        conds += [f"{c}::text ~* :pattern" for c in texts]
    else:
        pattern = "(?!)"
    return " or ".join(conds) or "false", {"ids": sorted(person.ids), "emails": sorted(person.emails),
                                           "pattern": rf"(^|[^A-Za-z0-9_.@-])({pattern})($|[^A-Za-z0-9_@-])"}


def _pseudonym(person: Person) -> str:
    return "erased:" + hashlib.sha256("|".join(sorted(person.tokens())).encode()).hexdigest()[:16]


def _erase_table(conn: Connection, table: str, person: Person) -> int:
    cols = _columns(conn, table)
    where, params = _match(cols, person)
    if table == "kpis.data_quality":
        # Keep the check's result; drop the person's values from its sample.
        return conn.execute(sa.text(
            f"update {table} set unexpected_sample = coalesce((select jsonb_agg(e) from"
            " jsonb_array_elements(unexpected_sample) as e where not (e::text ~* :pattern)), '[]'::jsonb)"
            f" where {where}"), params).rowcount
    if table not in TOMBSTONES:
        _discount_batches(conn, table, cols, where, params)
        return conn.execute(sa.text(f"delete from {table} where {where}"), params).rowcount
    sets = []
    for c, kind in cols.items():
        if c in ("contact_id",):
            sets.append(f"{c} = :pseudonym")
        elif "email" in c and kind == "text":
            sets.append(f"{c} = 'erased'")
        elif c in ("first_name", "last_name", "error", "url"):
            sets.append(f"{c} = null")
        elif kind == "jsonb":
            sets.append(f"{c} = '{{}}'::jsonb")
    return conn.execute(sa.text(f"update {table} set {', '.join(sets)} where {where}"),
                        {**params, "pseudonym": _pseudonym(person)}).rowcount


def _discount_batches(conn: Connection, table: str, cols: Mapping[str, str], where: str,
                      params: Mapping[str, object]) -> None:
    """Keep the ingest batches' row counts equal to what the raw tables hold (row accounting checks it)."""
    if table == "raw.quarantine":
        column, counter = "batch_id", "rows_quarantined"
    elif table.startswith("raw.") and "_batch_id" in cols:
        column, counter = "_batch_id", "rows_loaded"
    else:
        return
    conn.execute(sa.text(
        f"update raw.ingest_batches as b set {counter} = b.{counter} - e.n, rows_received = b.rows_received - e.n"
        f" from (select {column} as batch_id, count(*) as n from {table} where {where} group by 1) as e"
        " where b.batch_id = e.batch_id"), params)


def _rename_batch(conn: Connection, name: str, old: str, new: str) -> None:
    """A landed file rewritten without the person: its batch now stands for the new content (batch ids
    end in the checksum's first 12 hex digits), so the next ingest skips it instead of loading it again."""
    batches = conn.execute(sa.text(
        "select batch_id, table_name from raw.ingest_batches where source_file = :n and checksum = :c"),
        {"n": name, "c": old}).all()
    for batch_id, table in batches:
        renamed = batch_id.replace(old[:12], new[:12])
        conn.execute(sa.text("update raw.ingest_batches set batch_id = :r, checksum = :c where batch_id = :b"),
                     {"r": renamed, "c": new, "b": batch_id})
        conn.execute(sa.text(f"update {table} set _batch_id = :r where _batch_id = :b"), {"r": renamed, "b": batch_id})
        conn.execute(sa.text("update raw.quarantine set batch_id = :r where batch_id = :b"),
                     {"r": renamed, "b": batch_id})


def _mentions(text: str, tokens: Iterable[str]) -> bool:
    low = text.lower()
    return any(re.search(rf"(^|[^A-Za-z0-9_.@-]){re.escape(t.lower())}($|[^A-Za-z0-9_@-])", low) for t in tokens)


def _erase_files(conn: Connection, home: Path, person: Person) -> dict[str, int]:
    counts: dict[str, int] = {}
    tokens = person.text_tokens()
    if not tokens or not home.exists():
        return counts
    for path in sorted(home.rglob("*")):
        rel = path.relative_to(home)
        if not path.is_file() or rel.parts[0] in _SKIP_DIRS:
            continue
        # Exports may hold bytes that are not UTF-8 (a wrongly encoded line): kept as they are.
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
        if not _mentions(text, tokens):
            continue
        kind = f"files:{rel.parts[0]}"
        if rel.parts[0] == "landing":
            old = hashlib.sha256(path.read_bytes()).hexdigest()
            kept = "".join(line for line in text.splitlines(keepends=True) if not _mentions(line, tokens))
            path.write_bytes(kept.encode("utf-8", errors="surrogateescape"))
            _rename_batch(conn, path.name, old, hashlib.sha256(path.read_bytes()).hexdigest())
        else:
            path.unlink()
        counts[kind] = counts.get(kind, 0) + 1
    return counts
