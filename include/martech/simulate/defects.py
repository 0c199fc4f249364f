"""The catalogue of data defects martech expects in its sources, and what staging does about each.

One list serves two sides that never talk to each other: the simulator plants these defects (and
labels every affected row in ``sim_truth.defects``, which the pipeline never reads), and staging
detects them without looking at the labels. Each detection is recorded either as a row in
``raw.quarantine`` (the row is rejected, with a reason a person can act on), in
``staging.corrections`` (the row is kept, one field was repaired, the original value is kept) or as a
merge (the row is a duplicate of another one and folded into it, counted). ``docs/defects.md`` reports
precision and recall of those detections per kind against the labels.

Handling:
  ``quarantine``  the row is rejected; it lands in ``raw.quarantine`` with this kind as its reason code;
  ``correct``     the row is staged with the field repaired; ``staging.corrections`` keeps the original;
  ``merge``       the row is folded into the row it duplicates; ``staging.identity_merges`` or the
                  table's duplicate counter records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Handling = Literal["quarantine", "correct", "merge"]


@dataclass(frozen=True)
class DefectKind:
    code: str
    table: str  # raw table it appears in
    handling: Handling
    description: str  # what the defect looks like in the source
    action: str  # what staging does, in words a reader of the quarantine / corrections can act on


KINDS: tuple[DefectKind, ...] = (
    # -- people: CRM export and shop customers ----------------------------------------------------------
    DefectKind("invalid_email", "crm_contacts", "quarantine",
               "email without @, with spaces inside or without a domain dot",
               "fix the address in the CRM; the contact is not staged until it parses"),
    DefectKind("email_padding", "crm_contacts", "correct",
               "email with surrounding whitespace", "trimmed"),
    DefectKind("email_case_duplicate", "crm_contacts", "merge",
               "the same address in different letter case on two contacts",
               "merged into one contact per lower-cased address (oldest contact id survives)"),
    DefectKind("same_person_two_ids", "shop_customers", "merge",
               "one person registered twice in the shop with different customer ids and the same address",
               "merged: orders of both ids belong to the surviving customer"),
    DefectKind("null_birthday", "crm_contacts", "correct",
               "empty birthday", "kept as unknown (no birthday mail)"),
    DefectKind("impossible_birthday", "crm_contacts", "correct",
               "birthday that is not a date (31 Feb), in the future or before 1900",
               "set to unknown; the original value is kept in staging.corrections"),
    DefectKind("future_timestamp", "shop_orders", "quarantine",
               "order time after the moment of the load", "rejected: fix the clock of the source system"),
    DefectKind("pre_epoch_timestamp", "shop_orders", "quarantine",
               "order time before 1970 (a zero or sentinel date)", "rejected: the order time is unknown"),
    DefectKind("naive_timestamp", "crm_contacts", "correct",
               "timestamp text without a zone offset",
               "read as UTC (documented source convention) and recorded"),
    DefectKind("negative_quantity", "shop_order_items", "quarantine",
               "order line with a quantity below zero (returns belong in refunds)", "rejected"),
    DefectKind("refund", "shop_orders", "correct",
               "order refunded after the fact (status refunded)",
               "kept; its revenue counts as zero in net revenue"),
    DefectKind("zero_price", "shop_order_items", "correct",
               "order line with unit price 0 that is not a free gift",
               "kept, flagged as free; excluded from price statistics"),
    DefectKind("negative_price", "shop_order_items", "quarantine",
               "order line with a unit price below zero", "rejected"),
    DefectKind("unknown_currency", "shop_orders", "quarantine",
               "currency code outside ISO 4217 / the shop's currencies", "rejected: fix the currency"),
    DefectKind("unknown_customer", "shop_orders", "quarantine",
               "order whose customer id exists in no customer batch", "rejected until the customer arrives"),
    DefectKind("orphan_order_item", "shop_order_items", "quarantine",
               "order line for an order that does not exist (or was rejected)", "rejected with its order"),
    DefectKind("unknown_product", "shop_order_items", "quarantine",
               "order line for a product id not in the catalogue", "rejected"),
    DefectKind("amount_out_of_range", "shop_orders", "quarantine",
               "order total too large for any money column (123456789012345.00)",
               "rejected before the cast, with its lines; the rest of the run stages"),
    DefectKind("conflicting_version", "shop_customers", "correct",
               "the same key twice with the same updated_at and different content (checked in every keyed table)",
               "one version staged, the other recorded in staging.corrections naming the one kept"),
    DefectKind("future_updated_at", "crm_contacts", "quarantine",
               "updated_at years ahead (2099), a source clock error (checked in every table with an updated_at)",
               "held: every later run examines it again; the version before it stays staged, never shadowed"),
    DefectKind("cart_value_out_of_range", "shop_carts", "quarantine",
               "cart lines, each in range, that add up past what a cart value holds (10,000,000,000)",
               "the cart and its lines rejected before any cast; the rest of the run stages"),
    DefectKind("duplicate_customer_id", "shop_customers", "merge",
               "the same customer row twice with identical content in one batch", "one kept, the copy counted"),
    DefectKind("duplicate_order_id", "shop_orders", "merge",
               "the same order id twice with identical content in one batch", "one kept, the copy counted"),
    DefectKind("total_mismatch", "shop_orders", "correct",
               "order total that differs from the sum of its lines", "total recomputed from the lines"),
    DefectKind("malformed_csv_line", "crm_contacts", "quarantine",
               "CSV line with the wrong number of fields or a broken quote", "rejected at load with its line number"),
    DefectKind("unterminated_quote", "crm_contacts", "quarantine",
               "a quote opened inside a value and never closed (it would swallow the lines after it)",
               "the line alone rejected at load with its line number; the next line is read normally"),
    DefectKind("nul_byte", "crm_contacts", "quarantine",
               "a NUL byte inside a value (PostgreSQL text cannot hold it)",
               "the line rejected at load, its bytes kept in base64; the rest of the file loads"),
    DefectKind("invalid_utf8", "crm_contacts", "quarantine",
               "a line written in Windows-1252 inside a UTF-8 file (bytes that are not UTF-8)",
               "the line rejected at load naming the field, its bytes kept in base64: re-export as UTF-8"),
    DefectKind("wrong_encoding", "crm_contacts", "correct",
               "text in Latin-1 / CP1252 inside a UTF-8 file (mojibake)", "re-decoded as CP1252"),
    DefectKind("overlong_name", "crm_contacts", "correct",
               "first or last name longer than 200 characters", "truncated to 200 characters"),
    DefectKind("markup_in_name", "crm_contacts", "correct",
               "HTML or <script> inside a name", "tags stripped (templates escape anyway)"),
    DefectKind("number_as_text", "shop_orders", "correct",
               "amount written with thousands separators, currency sign or spaces ('1,234.50 ')",
               "parsed to a number"),
    DefectKind("unknown_country", "crm_contacts", "correct",
               "country that is not an ISO 3166 alpha-2 code", "set to unknown"),
    DefectKind("unknown_timezone", "crm_contacts", "correct",
               "time zone name the tz database does not know", "set to unknown (country default applies)"),
    DefectKind("invalid_consent_status", "crm_contacts", "correct",
               "consent status outside the documented values", "treated as 'unknown' (never mailed)"),
)

BY_CODE: dict[str, DefectKind] = {k.code: k for k in KINDS}


def kind(code: str) -> DefectKind:
    """The defect kind named ``code``; a clear error for a typo."""
    try:
        return BY_CODE[code]
    except KeyError:
        raise KeyError(f"unknown defect kind {code!r}; known kinds: {', '.join(sorted(BY_CODE))}") from None
