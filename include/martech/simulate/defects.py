"""The catalogue of data defects martech expects in its sources, and what staging does about each.

One list serves two sides that never talk to each other: the simulator plants these defects (and
labels every affected row in ``sim_truth.defects``, which the pipeline never reads), and staging
detects them without looking at the labels. Each detection is recorded either as a row in
``raw.quarantine`` (the row is rejected, with a reason a person can act on), in
``staging.corrections`` (the row is kept, one field was repaired, the original value is kept) or as a
merge (the row is a duplicate of another one and folded into it, counted). ``docs/defects.md`` reports
precision and recall of those detections per kind against the labels. The catalogue itself is data,
one line per kind, in ``defects.tsv`` beside this module.

Handling:
  ``quarantine``  the row is rejected; it lands in ``raw.quarantine`` with this kind as its reason code;
  ``correct``     the row is staged with the field repaired; ``staging.corrections`` keeps the original;
  ``merge``       the row is folded into the row it duplicates; ``staging.identity_merges`` or the
                  table's duplicate counter records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, cast, get_args

from martech.simulate._data import read_rows

Handling = Literal["quarantine", "correct", "merge"]


@dataclass(frozen=True)
class DefectKind:
    code: str
    table: str  # raw table it appears in
    handling: Handling
    description: str  # what the defect looks like in the source
    action: str  # what staging does, in words a reader of the quarantine / corrections can act on


KINDS_FILE = Path(__file__).with_name("defects.tsv")
_HANDLINGS = get_args(Handling)


def _read_kinds(path: Path = KINDS_FILE) -> tuple[DefectKind, ...]:
    """The catalogue as data: one kind per line of ``defects.tsv`` (code, table, handling, description, action)."""
    rows = read_rows(path, 5, f"code, table, handling ({', '.join(_HANDLINGS)}), description and action",
                     lambda fields: fields[2] in _HANDLINGS)
    return tuple(DefectKind(code, table, cast(Handling, handling), description, action)
                 for code, table, handling, description, action in rows)


KINDS: tuple[DefectKind, ...] = _read_kinds()
BY_CODE: dict[str, DefectKind] = {k.code: k for k in KINDS}


def kind(code: str) -> DefectKind:
    """The defect kind named ``code``; a clear error for a typo."""
    try:
        return BY_CODE[code]
    except KeyError:
        raise KeyError(f"unknown defect kind {code!r}; known kinds: {', '.join(sorted(BY_CODE))}") from None
