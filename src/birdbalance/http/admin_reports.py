"""The admin API's reading handlers: an account's entries, days, forecast, statement,
usage and past balance (mixed into :class:`birdbalance.http.admin.AdminAPI`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.requests import Request
from starlette.responses import Response

from birdbalance.service import Service

from .responses import JSONBody, csv_download

T = TypeVar("T")


class ReportHandlers:
    """Handlers that read one account's history, off the event loop."""

    service: Service

    async def _read(self, fn: Callable[[], T]) -> T:
        raise NotImplementedError

    async def list_entries(self, request: Request) -> JSONBody:
        q = request.query_params
        account_id = request.path_params["account_id"]
        return JSONBody(
            await self._read(
                lambda: self.service.list_entries(
                    account_id,
                    mode=q.get("mode"),
                    cursor=q.get("cursor"),
                    limit=q.get("limit"),
                    kind=q.get("kind"),
                    start=q.get("from"),
                    end=q.get("to"),
                    reference=q.get("reference"),
                )
            )
        )

    async def daily(self, request: Request) -> JSONBody:
        q = request.query_params
        account_id = request.path_params["account_id"]
        return JSONBody(
            await self._read(
                lambda: self.service.daily(account_id, mode=q.get("mode"), days=q.get("days"))
            )
        )

    async def forecast(self, request: Request) -> JSONBody:
        q = request.query_params
        account_id = request.path_params["account_id"]
        return JSONBody(
            await self._read(lambda: self.service.forecast(account_id, mode=q.get("mode")))
        )

    async def statement(self, request: Request) -> Response:
        q = request.query_params
        account_id = request.path_params["account_id"]
        accept = request.headers.get("accept", "")
        if q.get("format") == "csv" or "text/csv" in accept:
            name, chunks = await self._read(
                lambda: self.service.statement_csv(
                    account_id, start=q.get("from"), end=q.get("to"), mode=q.get("mode")
                )
            )
            # The rows are read page by page while they are sent.
            return csv_download(name, chunks)
        return JSONBody(
            await self._read(
                lambda: self.service.statement(
                    account_id,
                    start=q.get("from"),
                    end=q.get("to"),
                    mode=q.get("mode"),
                    cursor=q.get("cursor"),
                    limit=q.get("limit"),
                )
            )
        )

    async def usage(self, request: Request) -> Response:
        q = request.query_params
        account_id = request.path_params["account_id"]
        args = {
            "by": q.get("by"),
            "start": q.get("from"),
            "end": q.get("to"),
            "mode": q.get("mode"),
        }
        if q.get("format") == "csv" or "text/csv" in request.headers.get("accept", ""):
            name, rows = await self._read(lambda: self.service.usage_csv(account_id, **args))
            return csv_download(name, iter(rows))
        return JSONBody(await self._read(lambda: self.service.usage_by(account_id, **args)))

    async def balance_at(self, request: Request) -> JSONBody:
        q = request.query_params
        account_id = request.path_params["account_id"]
        return JSONBody(
            await self._read(
                lambda: self.service.balance_at(account_id, at=q.get("at"), mode=q.get("mode"))
            )
        )
