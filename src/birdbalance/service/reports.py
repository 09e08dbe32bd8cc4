"""Reports on a ledger: its entries, its days, statements (JSON and CSV) and the
balance at a moment. Reads only."""

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Final

from birdbalance import shapes
from birdbalance.daily import MAX_CHART_DAYS, day_range, fill_days
from birdbalance.errors import InvalidParameter, MissingParameter, TimestampError
from birdbalance.forecast import PACE_DAYS, forecast
from birdbalance.ids import utc_timestamp
from birdbalance.ledger import EntryKind, Mode, Payment
from birdbalance.money import balance_type, format_amount
from birdbalance.records import Account
from birdbalance.representations import (
    day_shape,
    entry_shape,
    kind_totals,
    page_shape,
)
from birdbalance.service.exports import CSV_PAGE_ROWS, csv_text, statement_csv_rows
from birdbalance.service.inputs import (
    DEFAULT_PAGE_SIZE,
    check_seq_cursor,
    entry_filter,
    parse_mode,
)
from birdbalance.spending import remaining
from birdbalance.storage import MAX_PAGE_SIZE, Store
from birdbalance.timestamps import LAST_TIMESTAMP, parse_timestamp
from birdbalance.validation import (
    MAX_METADATA_KEY_CHARS,
    page_limit,
    resource_id,
)

#: The longest range a usage breakdown reads (it groups every entry of the range).
MAX_USAGE_RANGE_DAYS: Final = 366


def _days_between(first: str, last: str) -> float:
    start = datetime.fromisoformat(first.replace("Z", "+00:00"))
    end = datetime.fromisoformat(last.replace("Z", "+00:00"))
    return (end - start).total_seconds() / 86400


class Reports:
    """The read-only reports of a ledger; :class:`~birdbalance.service.Service` has them."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def list_entries(
        self,
        account_id: str,
        *,
        mode: str | None,
        cursor: str | None,
        limit: str | None,
        kind: str | None = None,
        start: str | None = None,
        end: str | None = None,
        reference: str | None = None,
    ) -> shapes.Page[shapes.Entry]:
        """A page of entries, newest first, narrowed to a kind, a time range
        ``[from, to)`` and an exact reference (each optional)."""
        account_id = resource_id(account_id, "account")
        ledger_mode = parse_mode(mode)
        check_seq_cursor(cursor)
        size = page_limit(limit, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        filters = entry_filter(kind=kind, start=start, end=end, reference=reference)
        account = self.store.get_account(account_id)
        page = self.store.list_entries(account_id, ledger_mode, cursor, size, filters)
        return page_shape(page, [entry_shape(e, account.scale) for e in page.items])

    def daily(
        self, account_id: str, *, mode: str | None, days: str | None, today: date | None = None
    ) -> shapes.Daily:
        """The last ``days`` UTC days (default 30, at most 366), ending today: each day's
        closing balance, usage and totals by kind, from the per-day totals."""
        account_id = resource_id(account_id, "account")
        ledger_mode = parse_mode(mode)
        count = page_limit(days, default=30, maximum=MAX_CHART_DAYS, parameter="days")
        first, last = day_range(today or datetime.now(UTC).date(), count)
        series = self.store.daily_totals(account_id, ledger_mode, first, last)
        account = series.account
        return shapes.Daily(
            account_id=account_id,
            mode=ledger_mode,
            type=balance_type(account.asset),
            first=first,
            last=last,
            opening_balance=format_amount(series.opening_minor, account.scale),
            data=[day_shape(d, account.scale) for d in fill_days(series, first, last)],
        )

    def forecast(
        self, account_id: str, *, mode: str | None, today: date | None = None
    ) -> shapes.Forecast:
        """When the ledger's spendable amount runs out at the last 7 and 30 days' pace
        (see :mod:`birdbalance.forecast`), from the per-day totals."""
        account_id = resource_id(account_id, "account")
        ledger_mode = parse_mode(mode)
        today = today or datetime.now(UTC).date()
        first, last = day_range(today, max(PACE_DAYS))
        series = self.store.daily_totals(account_id, ledger_mode, first, last)
        account = series.account
        spendable = self._spendable(account, ledger_mode)
        paces = forecast(spendable, fill_days(series, first, last), today)
        return shapes.Forecast(
            account_id=account_id,
            mode=ledger_mode,
            type=balance_type(account.asset),
            as_of=today.isoformat(),
            spendable=None if spendable is None else format_amount(spendable, account.scale),
            paces=[
                shapes.Pace(
                    days=p.days,
                    per_day=format_amount(p.per_day_minor, account.scale),
                    runs_out_on=None if p.runs_out_on is None else p.runs_out_on.isoformat(),
                )
                for p in paces
            ],
        )

    def _spendable(self, account: Account, mode: Mode) -> int | None:
        """What the account can spend before it is refused: available, plus a postpaid
        credit limit (None: no limit). A shared sub-account's: its parent's, within what
        its own limit leaves."""
        if account.funding_id is not None:
            assert account.shared is not None
            spend = account.shared[mode]
            parent = self.store.get_account(account.funding_id)
            parent_spendable = self._spendable(parent, mode)
            left = remaining(spend.limit, spend.spent_minor)
            if parent_spendable is None:
                return left
            return parent_spendable if left is None else min(parent_spendable, left)
        ledger = account.live if mode is Mode.LIVE else account.test
        available = ledger.balance_minor - ledger.held_minor
        if account.payment is Payment.POSTPAID:
            limit = account.credit_limit_minor
            return None if limit is None else available + limit
        return available

    def usage_by(
        self,
        account_id: str,
        *,
        by: str | None,
        start: str | None,
        end: str | None,
        mode: str | None,
    ) -> shapes.UsageBreakdown:
        """Usage over ``[from, to)`` by a metadata key, largest first (at most 1,000
        groups); the range is at most :data:`MAX_USAGE_RANGE_DAYS` days."""
        if by is None:
            raise MissingParameter("by is required: a metadata key", "by")
        if not 1 <= len(by) <= MAX_METADATA_KEY_CHARS or "\x00" in by:
            raise InvalidParameter(
                f"by must be a metadata key of 1 to {MAX_METADATA_KEY_CHARS} characters", "by"
            )
        account_id, ledger_mode, first, last = self._statement_range(account_id, start, end, mode)
        if _days_between(first, last) > MAX_USAGE_RANGE_DAYS:
            raise InvalidParameter(
                f"a breakdown covers at most {MAX_USAGE_RANGE_DAYS} days", "from"
            )
        found = self.store.usage_by(account_id, ledger_mode, by, first, last)
        scale = found.account.scale
        return shapes.UsageBreakdown(
            account_id=account_id,
            mode=ledger_mode,
            type=balance_type(found.account.asset),
            by=by,
            first=first,
            last=last,
            data=[
                shapes.UsageGroup(
                    value=g.value, usage=format_amount(g.usage_minor, scale), entries=g.entries
                )
                for g in found.groups
            ],
            truncated=found.truncated,
        )

    def usage_csv(
        self,
        account_id: str,
        *,
        by: str | None,
        start: str | None,
        end: str | None,
        mode: str | None,
    ) -> tuple[str, list[str]]:
        """The breakdown as CSV: its file name and its text (at most 1,001 rows)."""
        found = self.usage_by(account_id, by=by, start=start, end=end, mode=mode)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow([found.by, "usage", "entries"])
        for group in found.data:
            writer.writerow([csv_text(group.value), group.usage, group.entries])
        name = f"usage-{found.account_id}-{found.mode}-{found.first[:10]}-{found.last[:10]}.csv"
        return name, [buffer.getvalue()]

    def _statement_range(
        self, account_id: str, start: str | None, end: str | None, mode: str | None
    ) -> tuple[str, Mode, str, str]:
        account_id = resource_id(account_id, "account")
        ledger_mode = parse_mode(mode)
        if start is None:
            raise MissingParameter("from is required (an RFC 3339 time)", "from")
        now = utc_timestamp()
        try:
            first = parse_timestamp(start)
            # A range reaching into the future ends now: entries written later, even in
            # the range, would change a statement already given out.
            last = min(parse_timestamp(end), now) if end is not None else now
        except TimestampError as exc:
            raise InvalidParameter(f"from and to must be RFC 3339 times: {exc}", "from") from None
        if first > last:
            raise InvalidParameter("from must not be after to (or now)", "from")
        return account_id, ledger_mode, first, last

    def statement(
        self,
        account_id: str,
        *,
        start: str | None,
        end: str | None,
        mode: str | None,
        cursor: str | None,
        limit: str | None,
    ) -> shapes.Statement:
        """Opening balance, totals by kind, closing balance, and a page of the entries."""
        account_id, ledger_mode, first, last = self._statement_range(account_id, start, end, mode)
        check_seq_cursor(cursor)
        size = page_limit(limit, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
        found = self.store.statement(account_id, ledger_mode, first, last, int(cursor or 0), size)
        scale = found.account.scale
        counts = {kind.value: found.counts.get(kind.value, 0) for kind in EntryKind}
        return shapes.Statement(
            account_id=account_id,
            mode=ledger_mode,
            type=balance_type(found.account.asset),
            first=first,
            last=last,
            opening_balance=format_amount(found.opening_minor, scale),
            closing_balance=format_amount(found.closing_minor, scale),
            totals=kind_totals(found.totals_minor, scale),
            counts=shapes.KindCounts(**counts),
            data=[entry_shape(e, scale) for e in found.entries],
            next_cursor=None if found.next_cursor is None else str(found.next_cursor),
        )

    def statement_csv(
        self, account_id: str, *, start: str | None, end: str | None, mode: str | None
    ) -> tuple[str, Iterator[str]]:
        """A file name and the CSV text in chunks (every entry of the range, any number).

        Checks everything before the first chunk, so errors are answers, not broken files.
        The closing row and the totals are sums of the rows written, so the file adds up
        by construction; the first page's snapshot gives the opening balance.
        """
        account_id, ledger_mode, first, last = self._statement_range(account_id, start, end, mode)
        head = self.store.statement(account_id, ledger_mode, first, last, 0, CSV_PAGE_ROWS)
        name = f"statement-{account_id}-{ledger_mode.value}-{first[:10]}-{last[:10]}.csv"
        return name, statement_csv_rows(self.store, head, ledger_mode, first, last)

    def balance_at(self, account_id: str, *, at: str | None, mode: str | None) -> shapes.BalanceAt:
        """A ledger's balance at a past moment, from the running balances of its entries;
        without ``at``, its balance now (that of its last entry)."""
        account_id = resource_id(account_id, "account")
        ledger_mode = parse_mode(mode)
        if at is None:
            moment = utc_timestamp()
            found = self.store.balance_at(account_id, ledger_mode, LAST_TIMESTAMP)
        else:
            try:
                moment = parse_timestamp(at)
            except TimestampError as exc:
                raise InvalidParameter(f"at {exc}", "at") from None
            found = self.store.balance_at(account_id, ledger_mode, moment)
        account = found.account
        return shapes.BalanceAt(
            account_id=account_id,
            mode=ledger_mode,
            at=moment,
            payment=account.payment,
            type=balance_type(account.asset),
            amount=format_amount(found.balance_minor, account.scale),
            seq=found.seq,
            entry_at=found.entry_at,
        )
