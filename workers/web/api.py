"""`/api/...`: the JSON behind the pages, in the shapes of the CLI's --json
(`workers/read_views.py`), for scripts (bearer token) and browsers (basic auth, and the
X-CSRF-Token header on a POST). Changes and the history go through the `Drumline` client."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models.backfill_store import BackfillStore
from models.change_store import MAX_NOTE_CHARS
from models.definitions import parse_definition
from models.errors import DefinitionError, DrumlineError
from models.read_models import producer_status, workflow_overview
from models.records import WorkflowRecord
from models.run_store import RunStore
from models.slot_ledger_store import recent_outcomes
from models.workflow_store import WorkflowStore
from workers.read_views import (
    backfill_view,
    history_view,
    outcomes_view,
    producer_view,
    run_view,
    triggered_view,
    workflow_view,
)
from workers.web import actions
from workers.web.context import WebContext, json_response
from workers.web.csrf import CsrfError

MAX_RUNS = 10_000
DEFAULT_RUNS = 20
MAX_HISTORY = 10_000
DEFAULT_HISTORY = 50
SOURCE = "<request body>"

Endpoint = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Api:
    def __init__(self, web: WebContext) -> None:
        self.web = web

    def routes(self) -> list[Route]:
        workflow = "/api/workflows/{name}"
        producer = workflow + "/producers/{producer}"
        return [
            Route("/api/workflows", self.read(self.workflows), methods=["GET"]),
            Route(workflow, self.read(self.status), methods=["GET"]),
            Route(workflow + "/runs", self.read(self.runs), methods=["GET"]),
            Route(workflow + "/history", self.read(self.history), methods=["GET"]),
            Route(workflow + "/pause", self.post(self.pause), methods=["POST"]),
            Route(workflow + "/resume", self.post(self.resume), methods=["POST"]),
            Route(producer + "/outcomes", self.read(self.outcomes), methods=["GET"]),
            Route(producer + "/pause", self.post(self.pause_producer), methods=["POST"]),
            Route(producer + "/resume", self.post(self.resume_producer), methods=["POST"]),
            Route(producer + "/trigger", self.post(self.trigger), methods=["POST"]),
            Route("/api/deploy", self.post(self.deploy), methods=["POST"]),
        ]

    def read(self, handler: Callable[[Request], Any]) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            try:
                return json_response(await run_in_threadpool(handler, request))
            except ApiError as error:
                return json_response({"error": str(error)}, error.status)

        return endpoint

    def post(self, handler: Callable[[Request], Awaitable[tuple[int, Any]]]) -> Endpoint:
        """A POST: CSRF checked (for a browser), errors as `{"error": ...}`."""

        async def endpoint(request: Request) -> Response:
            try:
                self.web.csrf.check(request)
                status, data = await handler(request)
            except CsrfError as error:
                return json_response({"error": str(error)}, 403)
            except ApiError as error:
                return json_response({"error": str(error)}, error.status)
            except DrumlineError as error:
                return json_response({"error": str(error)}, actions.http_status(error))
            return json_response(data, status)

        return endpoint

    # GET: `drumline ls | status | runs --json`

    def workflows(self, request: Request) -> Any:
        return {"workflows": [workflow_view(w) for w in workflow_overview(self.web.engine)]}

    def status(self, request: Request) -> Any:
        record = self._workflow(request)
        producers = producer_status(self.web.engine, workflow_id=record.id)
        return {
            "workflow": record.name,
            "status": record.status,
            "version": record.version,
            "producers": [producer_view(p) for p in producers],
            "backfills": [
                backfill_view(b.backfill, b)
                for b in BackfillStore(self.web.engine).progress(record.id)
            ],
        }

    def runs(self, request: Request) -> Any:
        record = self._workflow(request)
        producer = request.query_params.get("producer")
        if producer is not None:
            _require_producer(record, producer)
        limit = _limit(request, DEFAULT_RUNS, MAX_RUNS)
        runs = RunStore(self.web.engine).list(record.id, producer_name=producer, limit=limit)
        return {"workflow": record.name, "runs": [run_view(run) for run in runs]}

    def outcomes(self, request: Request) -> Any:
        """`drumline runs NAME --producer P --outcomes --json`: the producer's slot ledger."""
        record = self._workflow(request)
        producer = _require_producer(record, request.path_params["producer"])
        limit = _limit(request, DEFAULT_RUNS, MAX_RUNS)
        ledger = recent_outcomes(self.web.engine, record.id, producer, limit=limit)
        return outcomes_view(record.name, ledger)

    def history(self, request: Request) -> Any:
        """`drumline history NAME --json`: a deleted workflow's history too."""
        name = request.path_params["name"]
        limit = _limit(request, DEFAULT_HISTORY, MAX_HISTORY)
        entries = self.web.client(request).history(name, limit=limit)
        if not entries:
            raise ApiError(404, f"workflow {name[:100]!r} has no history")
        return history_view(name, entries)

    # POST: `drumline pause | resume | deploy | trigger --json`

    async def pause(self, request: Request) -> tuple[int, Any]:
        return await self._change(request, actions.pause)

    async def resume(self, request: Request) -> tuple[int, Any]:
        return await self._change(request, actions.resume)

    async def pause_producer(self, request: Request) -> tuple[int, Any]:
        return await self._change(request, actions.pause, request.path_params["producer"])

    async def resume_producer(self, request: Request) -> tuple[int, Any]:
        return await self._change(request, actions.resume, request.path_params["producer"])

    async def _change(
        self, request: Request, change: actions.Change, producer: str | None = None
    ) -> tuple[int, Any]:
        """`drumline pause|resume NAME [--producer P] --json`; the workers refuse a producer
        the workflow does not have."""
        name = request.path_params["name"]
        note = _note(await request.body())
        outcome = await run_in_threadpool(change, self.web.client(request), name, producer, note)
        return (200 if outcome.ok else 409), [outcome.as_json()]

    async def trigger(self, request: Request) -> tuple[int, Any]:
        name, producer = request.path_params["name"], request.path_params["producer"]
        run = await run_in_threadpool(actions.trigger, self.web.client(request), name, producer)
        return 200, triggered_view(name, run)

    async def deploy(self, request: Request) -> tuple[int, Any]:
        try:
            data = json.loads(await request.body())
        except (ValueError, RecursionError) as error:
            raise ApiError(400, f"the body is not JSON: {str(error)[:200]}") from None
        try:
            definition = parse_definition(
                data,
                source=SOURCE,
                known_producers=self.web.known_producers,
                max_timeout=self.web.settings.max_timeout,
            )
        except DefinitionError as error:
            problems = [{"path": p.path, "message": p.message} for p in error.problems]
            return 422, {"error": "invalid definition", "problems": problems}
        outcome = await run_in_threadpool(
            actions.deploy, self.web.client(request), definition, None
        )
        return (200 if outcome.ok else 409), [outcome.as_json()]

    def _workflow(self, request: Request) -> WorkflowRecord:
        name = request.path_params["name"]
        record = WorkflowStore(self.web.engine).get(name)
        if record is None:
            raise ApiError(404, f"no workflow named {name[:100]!r}")
        return record


def _require_producer(record: WorkflowRecord, producer: str) -> str:
    if producer not in record.definition.get("producers", {}):
        raise ApiError(404, f"workflow {record.name!r} has no producer {producer[:100]!r}")
    return producer


def _limit(request: Request, default: int, most: int) -> int:
    """The `limit` query parameter: a whole number from 1 to `most`."""
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= most:
        raise ApiError(400, f"limit: {raw[:20]!r} is not a whole number from 1 to {most}")
    return int(raw)


def _note(body: bytes) -> str | None:
    """The optional `{"note": "..."}` body of a pause or resume."""
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise ApiError(400, 'the body must be JSON: {"note": "..."}') from None
    if not isinstance(data, dict) or set(data) - {"note"}:
        raise ApiError(400, 'the body may only hold {"note": "..."}')
    note = data.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE_CHARS):
        raise ApiError(400, f"note: must be text of at most {MAX_NOTE_CHARS} characters")
    return note or None
