"""Exports: a ledger's statement as CSV, streamed page by page, safe to open in a
spreadsheet."""

import csv
import io
from collections.abc import Iterator
from typing import Final

from birdbalance.ledger import EntryKind, Mode
from birdbalance.money import format_amount
from birdbalance.records import (
    Statement,
)
from birdbalance.storage import Store

#: Entries per database read while a statement is exported as CSV.
CSV_PAGE_ROWS: Final = 2000

_CSV_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str | None) -> str:
    """Free text for a spreadsheet: a cell that starts like a formula is kept as text."""
    if not value:
        return ""
    return "'" + value if value.startswith(_CSV_FORMULA_START) else value


def statement_csv_rows(
    store: Store, head: Statement, mode: Mode, first: str, last: str
) -> Iterator[str]:
    scale = head.account.scale
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(["created_at", "id", "kind", "amount", "balance_after", "reference"])
    writer.writerow(
        [first, "", "opening_balance", "", format_amount(head.opening_minor, scale), ""]
    )
    running = head.opening_minor
    totals = dict.fromkeys((kind.value for kind in EntryKind), 0)
    page = head
    while True:
        for entry in page.entries:
            running += entry.amount_minor
            assert running == entry.balance_after_minor, "a ledger's entries must chain"
            totals[entry.kind.value] += entry.amount_minor
            writer.writerow(
                [
                    entry.created_at,
                    entry.id,
                    entry.kind.value,
                    format_amount(entry.amount_minor, scale),
                    format_amount(entry.balance_after_minor, scale),
                    csv_text(entry.reference),
                ]
            )
        yield flush()
        if page.next_cursor is None:
            break
        page = store.statement(
            head.account.id, mode, first, last, page.next_cursor, CSV_PAGE_ROWS, summary=False
        )
    writer.writerow([last, "", "closing_balance", "", format_amount(running, scale), ""])
    for kind, total in totals.items():
        writer.writerow(["", "", f"total_{kind}", format_amount(total, scale), "", ""])
    yield flush()
