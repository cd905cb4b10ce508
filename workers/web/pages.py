"""The pages: workflows, a workflow, its history, a producer; confirmations before every action,
and the actions' outcomes. Reads go through models/read_models.py like the CLI's; plans, the
history and every action go through the `Drumline` client (`actions.py`), as the web user. No
GET changes anything: a GET of an action shows its confirmation, whose form POSTs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from models.definitions import MAX_DEFINITION_BYTES, load_definition_text
from models.errors import DefinitionError, DefinitionProblem, DrumlineError
from models.read_models import (
    failing_producers,
    producer_status,
    run_timings,
    workflow_overview,
)
from models.records import WorkflowRecord
from models.run_store import RunStore
from models.slot_ledger_store import recent_outcomes
from models.workflow_store import WorkflowStore
from workers.read_views import history_view, plan_view, producer_view, run_view, workflow_view
from workers.web import actions
from workers.web.charts import Point, line_chart, percentile
from workers.web.context import WebContext
from workers.web.csrf import CsrfError

LATENESS_WINDOW = timedelta(days=1)
RECENT_RUNS = 15
PRODUCER_RUNS = 50
PRODUCER_OUTCOMES = 50
CHART_RUNS = 300
HISTORY_ENTRIES = 100
PASTED = "<pasted definition>"

Handler = Callable[[Request, FormData], Awaitable[Response]]


class Pages:
    def __init__(self, web: WebContext) -> None:
        self.web = web

    def routes(self) -> list[Route]:
        workflow = "/workflows/{name}"
        producer = workflow + "/producers/{producer}"
        return [
            Route("/", self.workflows, methods=["GET"]),
            Route(workflow, self.workflow, methods=["GET"]),
            Route(workflow + "/history", self.history, methods=["GET"]),
            Route(producer, self.producer, methods=["GET"]),
            Route(workflow + "/pause", self.confirm_pause, methods=["GET"]),
            Route(workflow + "/pause", self.action(self.pause), methods=["POST"]),
            Route(workflow + "/resume", self.confirm_resume, methods=["GET"]),
            Route(workflow + "/resume", self.action(self.resume), methods=["POST"]),
            Route(producer + "/pause", self.confirm_pause, methods=["GET"]),
            Route(producer + "/pause", self.action(self.pause), methods=["POST"]),
            Route(producer + "/resume", self.confirm_resume, methods=["GET"]),
            Route(producer + "/resume", self.action(self.resume), methods=["POST"]),
            Route(producer + "/trigger", self.confirm_trigger, methods=["GET"]),
            Route(producer + "/trigger", self.action(self.trigger), methods=["POST"]),
            Route("/deploy", self.deploy_form, methods=["GET"]),
            Route("/deploy/plan", self.action(self.deploy_plan), methods=["POST"]),
            Route("/deploy", self.action(self.deploy), methods=["POST"]),
        ]

    def action(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A POST: its form read within bounds and its CSRF token checked, before `handler`."""

        async def endpoint(request: Request) -> Response:
            async with request.form(
                max_files=1, max_fields=8, max_part_size=MAX_DEFINITION_BYTES + 1
            ) as form:
                try:
                    self.web.csrf.check(request, form)
                except CsrfError as error:
                    return self._error(request, 403, str(error))
                return await handler(request, form)

        return endpoint

    # Pages

    def workflows(self, request: Request) -> Response:
        failing = failing_producers(self.web.engine)
        rows = [
            {**workflow_view(w), "failing": failing.get(w.name, 0)}
            for w in workflow_overview(self.web.engine)
        ]
        return self.web.render(request, "workflows.html", workflows=rows)

    def workflow(self, request: Request) -> Response:
        record = self._workflow(request)
        if record is None:
            return self._missing(request)
        engine = self.web.engine
        since = self.web.now() - LATENESS_WINDOW
        lateness: dict[str, list[float]] = {}
        for timing in run_timings(engine, record.id, since=since):
            late = (timing.started_at - timing.scheduled_for).total_seconds()
            lateness.setdefault(timing.producer, []).append(late)
        producers = []
        for status in producer_status(engine, workflow_id=record.id):
            view = producer_view(status)
            seconds = lateness.get(view["name"], [])
            producers.append(
                {**view, "p50": percentile(seconds, 0.5), "p99": percentile(seconds, 0.99)}
            )
        runs = [run_view(run) for run in RunStore(engine).list(record.id, limit=RECENT_RUNS)]
        return self.web.render(
            request,
            "workflow.html",
            workflow=record,
            description=str(record.definition.get("description") or ""),
            producers=producers,
            runs=runs,
        )

    def producer(self, request: Request) -> Response:
        record = self._workflow(request)
        if record is None:
            return self._missing(request)
        name = request.path_params["producer"]
        found = [
            p
            for p in producer_status(self.web.engine, workflow_id=record.id)
            if p.schedule.producer_name == name
        ]
        if not found:
            return self._missing(request)
        status = found[0]
        runs = RunStore(self.web.engine).list(record.id, producer_name=name, limit=PRODUCER_RUNS)
        timings = run_timings(
            self.web.engine,
            record.id,
            since=self.web.now() - LATENESS_WINDOW,
            producer=name,
            per_producer=CHART_RUNS,
        )
        lateness = [
            Point(t.scheduled_for, (t.started_at - t.scheduled_for).total_seconds(), t.status)
            for t in timings
        ]
        durations = [
            Point(t.scheduled_for, t.duration_ms, t.status)
            for t in timings
            if t.duration_ms is not None
        ]
        return self.web.render(
            request,
            "producer.html",
            workflow=record,
            producer={**producer_view(status), "params": status.schedule.params},
            runs=[run_view(run) for run in runs],
            outcomes=recent_outcomes(self.web.engine, record.id, name, limit=PRODUCER_OUTCOMES),
            lateness_chart=line_chart("start lateness", "s", lateness),
            duration_chart=line_chart("duration", "ms", durations),
            task_url=self.task_url,
        )

    def history(self, request: Request) -> Response:
        """Every change of the workflow, newest first: version, who, why and what changed (a
        deleted workflow's too)."""
        name = request.path_params["name"]
        entries = self.web.client(request).history(name, limit=HISTORY_ENTRIES)
        if not entries:
            return self._missing(request)
        return self.web.render(request, "history.html", history=history_view(name, entries))

    def task_url(self, task_id: str) -> str:
        """Flower's page of a task."""
        return f"{self.web.settings.flower_url}/task/{quote(task_id, safe='')}"

    # Confirmations (GET: show what would happen, change nothing)

    def confirm_pause(self, request: Request) -> Response:
        return self._confirm(request, "pause")

    def confirm_resume(self, request: Request) -> Response:
        return self._confirm(request, "resume")

    def _confirm(self, request: Request, verb: str) -> Response:
        """The workflow's confirmation, or one producer's (a path naming a producer)."""
        record = self._workflow(request)
        producer = request.path_params.get("producer")
        if record is None or (
            producer is not None and producer not in record.definition.get("producers", {})
        ):
            return self._missing(request)
        return self.web.render(
            request, "confirm.html", workflow=record, verb=verb, producer=producer
        )

    def confirm_trigger(self, request: Request) -> Response:
        record = self._workflow(request)
        name = request.path_params["producer"]
        if record is None or name not in record.definition.get("producers", {}):
            return self._missing(request)
        return self.web.render(
            request, "confirm.html", workflow=record, verb="trigger", producer=name
        )

    def deploy_form(self, request: Request) -> Response:
        return self.web.render(request, "deploy.html", text="", problems=[])

    # Actions (POST, CSRF checked)

    async def pause(self, request: Request, form: FormData) -> Response:
        return await self._change(request, form, "pause", actions.pause)

    async def resume(self, request: Request, form: FormData) -> Response:
        return await self._change(request, form, "resume", actions.resume)

    async def _change(
        self, request: Request, form: FormData, verb: str, change: actions.Change
    ) -> Response:
        name, producer = request.path_params["name"], request.path_params.get("producer")
        note = _text(form, "note") or None
        client = self.web.client(request)
        try:
            outcome = await run_in_threadpool(change, client, name, producer, note)
        except DrumlineError as error:
            return self._error(request, actions.http_status(error), str(error))
        return self.web.render(
            request,
            "outcome.html",
            verb=verb,
            workflow_name=name,
            producer=producer,
            outcome=outcome,
            note=note,
        )

    async def trigger(self, request: Request, form: FormData) -> Response:
        name, producer = request.path_params["name"], request.path_params["producer"]
        try:
            run = await run_in_threadpool(actions.trigger, self.web.client(request), name, producer)
        except DrumlineError as error:
            return self._error(request, actions.http_status(error), str(error))
        return self.web.render(
            request,
            "triggered.html",
            workflow_name=name,
            run=run_view(run),
            task_url=self.task_url,
        )

    async def deploy_plan(self, request: Request, form: FormData) -> Response:
        text = ""
        try:
            text = await _definition_text(form)
            definition = load_definition_text(
                text,
                source=PASTED,
                known_producers=self.web.known_producers,
                max_timeout=self.web.settings.max_timeout,
            )
        except DefinitionError as error:
            return self.web.render(
                request, "deploy.html", 422, text=text, problems=_problems(error)
            )
        try:
            plan = await run_in_threadpool(self.web.client(request).plan, definition)
        except DrumlineError as error:  # e.g. a producer this process does not know
            return self.web.render(request, "deploy.html", 422, text=text, problems=[str(error)])
        return self.web.render(request, "plan.html", plan=plan_view(plan), text=text)

    async def deploy(self, request: Request, form: FormData) -> Response:
        text = _text(form, "definition")
        try:
            definition = load_definition_text(
                text,
                source=PASTED,
                known_producers=self.web.known_producers,
                max_timeout=self.web.settings.max_timeout,
            )
        except DefinitionError as error:
            return self.web.render(
                request, "deploy.html", 422, text=text, problems=_problems(error)
            )
        note = _text(form, "note") or None
        try:
            outcome = await run_in_threadpool(
                actions.deploy, self.web.client(request), definition, note
            )
        except DrumlineError as error:
            return self._error(request, actions.http_status(error), str(error))
        return self.web.render(
            request,
            "outcome.html",
            verb="deploy",
            workflow_name=definition.name,
            producer=None,
            outcome=outcome,
            note=note,
        )

    # Helpers

    def _workflow(self, request: Request) -> WorkflowRecord | None:
        return WorkflowStore(self.web.engine).get(request.path_params["name"])

    def _missing(self, request: Request) -> Response:
        return self._error(request, 404, "no such workflow or producer (see the workflows page)")

    def _error(self, request: Request, status: int, message: str) -> Response:
        return self.web.render(request, "error.html", status, message=message)


def _problems(error: DefinitionError) -> list[str]:
    """Each problem as `path: message` (an uploaded file's own problems name the file)."""
    return [
        f"{p.path or '(top level)'}: {p.message}" if p.file == PASTED else f"{p.file}: {p.message}"
        for p in error.problems
    ]


def _text(form: FormData, key: str) -> str:
    value = form.get(key)
    return value if isinstance(value, str) else ""


async def _definition_text(form: FormData) -> str:
    """The pasted definition, or the uploaded file's: refused if larger than a definition file
    may be, or not UTF-8."""
    upload = form.get("file")
    if not (isinstance(upload, UploadFile) and upload.filename):
        return _text(form, "definition")
    source = f"file {upload.filename[:100]!r}"
    data = await upload.read(MAX_DEFINITION_BYTES + 1)
    if len(data) > MAX_DEFINITION_BYTES:
        problem = f"is larger than {MAX_DEFINITION_BYTES} bytes, the limit"
        raise DefinitionError([DefinitionProblem(source, "", problem)])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DefinitionError([DefinitionProblem(source, "", "is not UTF-8 text")]) from None
