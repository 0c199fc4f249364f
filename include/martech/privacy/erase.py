"""Erase one person (GDPR Art. 17) from every table and file the project writes.

The person is found by contact id or address in the CRM and shop tables; every address, contact id and
customer id found that way is then removed:

- rows of the pipeline's tables that carry one of them are deleted, except in the tables the KPIs count
  (the send ledger, audience members, email events), where the row stays as a pseudonymous tombstone:
  address and name blanked, contact id replaced by ``erased:<hash>``;
- quality-result samples lose the matching values; quarantined rows holding them are deleted;
- files under ``MARTECH_HOME`` (outbox, previews, Data Docs) that mention them are deleted, landed export
  files are rewritten without the person's lines (their batch record follows, so they are not re-loaded).

A keyed hash of the normalised address (and of the contact and shop customer ids) goes on
``campaigns.do_not_contact``. A later import of the person is held back at the start of staging by
:func:`hold_back_erased`: their raw rows move to ``raw.quarantine`` (reason ``do_not_contact``, the row
itself withheld) and their landed file lines are removed, so they never reach staging, the models or an
audience; campaign eligibility consults the list too, as a second line. ``campaigns.erasure_requests`` keeps
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
_ADDRESS = re.compile(r"[^\s@<>]+@[^\s@<>]+")
_SKIP_DIRS = ("warehouse", "airflow")  # the database's own storage; Airflow's (checked to hold no addresses)


def secret(environ: Mapping[str, str] | None = None) -> str:
    environ = os.environ if environ is None else environ
    value = (environ.get(SECRET_ENV) or "").strip()
    refuse_development_secret(SECRET_ENV, value, DEV_SECRET, environ)
    return value or DEV_SECRET


def address_key(address: str, key: str | None = None) -> str:
    """The do-not-contact entry of an address: HMAC-SHA256 of its normalised form."""
    return hmac.new((key or secret()).encode(), address.strip().lower().encode(), hashlib.sha256).hexdigest()


def id_key(kind: str, value: str, key: str | None = None) -> str:
    """The do-not-contact entry of a contact or shop customer id (``kind`` names which)."""
    return address_key(f"{kind}:{value.strip()}", key)


def do_not_contact(conn: Connection) -> Callable[[str], bool]:
    """A test for "this address was erased": true when its keyed hash is on the do-not-contact list."""
    listed: set[str] = set()
    if _exists(conn, "campaigns.do_not_contact"):
        listed = set(conn.execute(sa.text(
            "select address_hmac from campaigns.do_not_contact where kind = 'address'")).scalars())
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
    return _follow(conn, p)


def _follow(conn: Connection, p: Person) -> Person:
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
        counts["campaigns.do_not_contact"] = _list(conn, person, key, request_id, run_date)
        conn.execute(sa.text(
            "insert into campaigns.erasure_requests (request_id, run_date, identified_by, counts)"
            " values (:r, :d, :by, cast(:c as jsonb)) on conflict (request_id) do update"
            " set counts = (campaigns.erasure_requests.counts || excluded.counts)"),
            {"r": request_id, "d": run_date, "by": "contact_id" if contact_id else "email",
             "c": json.dumps(counts)})
    return counts


def _entries(person: Person, key: str) -> list[tuple[str, str]]:
    """(kind, keyed hash) of every address and id the person goes by."""
    # Only what reads as an address: a mangled value ("Ann Lee <ann@x.org>") found beside it is erased, not listed.
    addresses = sorted(a for a in person.emails if _ADDRESS.fullmatch(a))
    return ([("address", address_key(a, key)) for a in addresses]
            + [("contact_id", id_key("contact_id", c, key)) for c in sorted(person.contact_ids)]
            + [("customer_id", id_key("customer_id", c, key)) for c in sorted(person.customer_ids)])


def _list(conn: Connection, person: Person, key: str, request_id: str, run_date: dt.date) -> int:
    entries = _entries(person, key)
    for kind, digest in entries:
        conn.execute(sa.text(
            "insert into campaigns.do_not_contact (address_hmac, request_id, listed_on, kind)"
            " values (:h, :r, :d, :k) on conflict (address_hmac) do nothing"),
            {"h": digest, "r": request_id, "d": run_date, "k": kind})
    return len(entries)


WITHHELD = "withheld: the person asked to be erased (campaigns.do_not_contact)"
HELD_BACK_REASON = ("the person was erased on request and is on the do-not-contact list: the row is not staged"
                    " and its content is not kept. Erase the person in the source system too")
# Id columns whose values are shop customer or CRM contact ids (HubSpot and Shopify use ids of their own).
_LISTED_IDS = {"contact_id": "contact_id", "customer_id": "customer_id", "shop_customer_id": "customer_id"}
_NOT_LANDED = ("raw.quarantine", "raw.ingest_batches", "raw.ingest_state")


def hold_back_erased(engine: Engine, *, run_date: dt.date, home: Path) -> dict[str, int]:
    """Keep a re-imported erased person out of the pipeline; returns rows (files) held back per table.

    Every raw row naming a listed address or id, and every row linked to those (the contact's shop
    customer, their orders ...), moves from its landing table to ``raw.quarantine`` as quarantined at
    landing: reason ``do_not_contact``, the row's content withheld, its batch's ``rows_loaded`` and
    ``rows_quarantined`` moved by one, so the row accounting still adds up. Landed files lose the
    person's lines (as on erasure), quality samples their values. Ids newly seen with a listed address
    are listed too. Nothing is read or written when the list is empty.
    """
    with engine.begin() as conn:
        if not _exists(conn, "campaigns.do_not_contact"):
            return {}
        listed: dict[str, str] = {h: r for h, r in conn.execute(sa.text(
            "select address_hmac, request_id from campaigns.do_not_contact")).all()}
        if not listed:
            return {}
        conn.execute(sa.text("select pg_advisory_xact_lock(hashtext('martech.erase'))"))
        key = secret()
        person, request_id = _listed_in_raw(conn, listed, key)
        if not person.tokens():
            return {}
        person = _follow(conn, person)
        counts: dict[str, int] = {}
        for table in _landing_tables(conn):
            n = _hold_back(conn, table, person, run_date)
            if n:
                counts[table] = n
        where, params = _match(_columns(conn, "raw.quarantine"), person)
        n = conn.execute(sa.text(
            "update raw.quarantine set received = :withheld, reason = :reason, row_key = null,"
            " source_ref = 'batch ' || batch_id, received_encoding = 'text'"
            f" where reason_code is distinct from 'do_not_contact' and ({where})"),
            {**params, "withheld": WITHHELD, "reason": HELD_BACK_REASON}).rowcount
        if n:
            counts["raw.quarantine"] = n
        if _exists(conn, "kpis.data_quality") and (n := _erase_table(conn, "kpis.data_quality", person)):
            counts["kpis.data_quality"] = n
        counts.update(_erase_files(conn, home, person))
        # A new account or contact of a listed address: its ids join the list.
        _list(conn, person, key, request_id, run_date)
    return counts


def _listed_in_raw(conn: Connection, listed: Mapping[str, str], key: str) -> tuple[Person, str]:
    """The addresses and ids in the landing tables whose keyed hash is listed, and a request that listed one."""
    person, request_ids = Person(), []
    for table in _landing_tables(conn):
        for column, kind in _columns(conn, table).items():
            id_kind = None if table.startswith(("raw.hubspot_", "raw.shopify_")) else _LISTED_IDS.get(column)
            if not ("email" in column and kind == "text") and id_kind is None:
                continue
            # Addresses are compared normalised (lower case), ids as they are.
            value_sql = f"btrim({column}::text)" if id_kind else f"lower(btrim({column}))"
            values = conn.execute(sa.text(
                f"select distinct {value_sql} from {table} where {column} is not null")).scalars()
            for value in values:
                digest = id_key(id_kind, value, key) if id_kind else address_key(value, key)
                if digest not in listed:
                    continue
                request_ids.append(listed[digest])
                {None: person.emails, "contact_id": person.contact_ids,
                 "customer_id": person.customer_ids}[id_kind].add(value)
    return person, min(request_ids, default="")


def _landing_tables(conn: Connection) -> list[str]:
    return [t for t in conn.execute(sa.text(
        "select c.table_schema || '.' || c.table_name from information_schema.columns as c"
        " join information_schema.tables as t using (table_schema, table_name)"
        " where c.table_schema = 'raw' and c.column_name = '_batch_id' and t.table_type = 'BASE TABLE'"
        " order by 1")).scalars() if t not in _NOT_LANDED]


def _hold_back(conn: Connection, table: str, person: Person, run_date: dt.date) -> int:
    cols = _columns(conn, table)
    where, params = _match(cols, person)
    # Where the row was, without its content: file and line, or (database pulls) only its batch.
    from_file = {"_source_file", "_line_no"} <= set(cols)
    ref = "g._source_file || ':' || g._line_no" if from_file else "'batch ' || g._batch_id"
    returned = "_batch_id, _source_file, _line_no" if from_file else "_batch_id"
    return int(conn.execute(sa.text(
        f"with gone as (delete from {table} where {where} returning {returned}),"
        " moved as ("
        "  insert into raw.quarantine (table_name, batch_id, source_ref, received, reason, run_date, reason_code,"
        "                              stage)"
        f"  select :table, g._batch_id, {ref}, :withheld, :reason, :run_date, 'do_not_contact', 'landing'"
        "  from gone as g returning batch_id),"
        " counted as ("
        "  update raw.ingest_batches as b set rows_loaded = b.rows_loaded - m.n,"
        "         rows_quarantined = b.rows_quarantined + m.n"
        "  from (select batch_id, count(*) as n from moved group by 1) as m where b.batch_id = m.batch_id"
        "  returning 1)"
        " select count(*) from moved"),
        {**params, "table": table, "withheld": WITHHELD, "reason": HELD_BACK_REASON,
         "run_date": run_date}).scalar_one())


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
        # Only rows rejected at landing are counted in their batch; staging's rejects are counted by staging.
        column, counter, where = "batch_id", "rows_quarantined", f"stage = 'landing' and ({where})"
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
