"""ctxbench load test: every response is judged by the leak checker; each leak or lost value is a locust failure.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000                 # web UI
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless -u 8 -r 8 -t 20s \
        --ctx-scenario pipeline --json-file out --csv out                          # headless

Options (also in the web UI, sent from master to workers): --ctx-scenario (get, post, stream, pipeline, mix; fixed at
start because it picks the user classes), --ctx-anonymous-share, --ctx-pipeline-depth, --ctx-rate (per-user requests
per second, 0 = closed loop), --ctx-skip-validation (read responses but do not judge them: the client's cost of
checking), --ctx-warmup (seconds not measured), --ctx-record (prefix of the exact per-process record), --ctx-stop-at
(stop early once every scenario cell's verdict is settled, a clean cell's users idle once it has its requests; single
process only), --ctx-stop-total (with it: the requests a clean run needs over all its cells) and --ctx-wait-for (a
health URL to poll before the run starts).
"""

from __future__ import annotations

import itertools
import time
import urllib.error
import urllib.request
from typing import Any

import gevent
from locust import FastHttpUser, User, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from loadtests import scenarios
from loadtests.pipeline import PipelineClient, ProtocolError
from loadtests.recorder import Recorder
from loadtests.validation import assess, failing, message

RECORDER = Recorder()
SETTLED_POLL_S = 0.02  # how often a run with --ctx-stop-at looks whether every cell is settled
WAIT_FOR_S = 20.0  # --ctx-wait-for: at most this long (the orchestrator's own health wait has the same bound)
WAIT_POLL_S = 0.02


class LeakFound(Exception):
    """A response judged not ok; its message lists the failing checkpoint.field:verdict names."""


@events.init_command_line_parser.add_listener
def add_options(parser: Any) -> None:
    parser.add_argument(
        "--ctx-scenario", choices=(*scenarios.SCENARIOS, scenarios.EACH), default=scenarios.DEFAULT_SCENARIO
    )
    parser.add_argument("--ctx-anonymous-share", type=float, default=scenarios.traffic.ANONYMOUS_SHARE)
    parser.add_argument("--ctx-pipeline-depth", type=int, default=scenarios.PIPELINE_DEPTH)
    parser.add_argument("--ctx-rate", type=float, default=0.0, help="per-user requests/s; 0 = closed loop")
    parser.add_argument("--ctx-skip-validation", action="store_true", default=False)
    parser.add_argument("--ctx-warmup", type=float, default=0.0, help="seconds at the start that are not measured")
    parser.add_argument("--ctx-record", default="", help="write the exact record to <prefix>.<pid>.json")
    parser.add_argument(
        "--ctx-stop-at",
        type=int,
        default=0,
        help="stop once every scenario cell has a downstream leak or this many requests (0 = run to -t)",
    )
    parser.add_argument(
        "--ctx-stop-total",
        type=int,
        default=0,
        help="with --ctx-stop-at: a clean run also needs this many requests over all its cells (0 = no such need)",
    )
    parser.add_argument("--ctx-wait-for", default="", help="poll this URL until it answers 200 before starting")


def options(environment: Environment) -> Any:
    return environment.parsed_options


def uses(user_class: type, scenario: str) -> bool:
    return scenario in getattr(user_class, "kinds_by_scenario", {})


@events.init.add_listener
def on_init(environment: Environment, **_: object) -> None:
    environment.events.request.add_listener(RECORDER.on_request)
    if options(environment) is not None and options(environment).ctx_wait_for:
        # started while the server starts (their start-ups overlap on separate cores); -t counts from after this
        wait_answering(options(environment).ctx_wait_for)
    # The master (or a single process) picks the user classes; workers keep all of them and spawn what they are told.
    if options(environment) is not None and not isinstance(environment.runner, WorkerRunner):
        chosen = [cls for cls in environment.user_classes if uses(cls, options(environment).ctx_scenario)]
        if chosen:
            environment.user_classes[:] = chosen
        if options(environment).ctx_scenario == scenarios.EACH:  # as many users in every scenario
            ContractUser.weight = scenarios.HTTP_USERS_PER_PIPELINE_USER


@events.test_start.add_listener
def on_test_start(environment: Environment, **_: object) -> None:
    if isinstance(environment.runner, MasterRunner) or options(environment) is None:
        return
    settings = {key: value for key, value in vars(options(environment)).items() if key.startswith("ctx_")}
    RECORDER.start(options(environment).ctx_warmup, settings)
    if settles(environment):
        gevent.spawn(stop_when_settled, environment)


def settles(environment: Environment) -> bool:
    """--ctx-stop-at applies: responses are judged, and in one process only (a worker sees only its share of each
    cell, so it cannot tell that the cell is settled)."""
    opts = options(environment)
    single = environment.runner is not None and not isinstance(environment.runner, WorkerRunner)
    return opts.ctx_stop_at > 0 and not opts.ctx_skip_validation and single


def driven(opts: Any) -> tuple[str, ...]:
    """The scenario cells this run drives."""
    return scenarios.SCENARIOS if opts.ctx_scenario == scenarios.EACH else (opts.ctx_scenario,)


def done_sending(environment: Environment, scenario: str) -> bool:
    """Under --ctx-stop-at: this user's cell is clean and has all it needs, so it sends nothing more."""
    opts = options(environment)
    return settles(environment) and RECORDER.done_sending(scenario, opts.ctx_stop_at, driven(opts), opts.ctx_stop_total)


def stop_when_settled(environment: Environment) -> None:
    """Quit as soon as no further request can change any cell's verdict (recorder.Recorder.settled)."""
    opts = options(environment)
    while not RECORDER.settled(opts.ctx_stop_at, driven(opts), opts.ctx_stop_total):
        gevent.sleep(SETTLED_POLL_S)
    RECORDER.stopped_early = True
    environment.runner.quit()


def wait_answering(url: str, timeout_s: float = WAIT_FOR_S) -> None:
    """Poll on fresh connections until 200; past the timeout, go on (the run then records what the server did)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            gevent.sleep(WAIT_POLL_S)


@events.test_stop.add_listener
def on_test_stop(environment: Environment, **_: object) -> None:
    RECORDER.finish()


@events.quitting.add_listener
def on_quitting(environment: Environment, **_: object) -> None:
    RECORDER.finish()
    prefix = options(environment).ctx_record if options(environment) is not None else ""
    if prefix and not isinstance(environment.runner, MasterRunner):
        RECORDER.write(prefix)


class ContractUser(FastHttpUser):
    """Single requests over a keep-alive connection (geventhttpclient), one kind per task run."""

    kinds_by_scenario = scenarios.HTTP_KINDS
    weight = 3  # in the mix: three HTTP users for every pipelining user (on_init changes it under EACH)
    started = itertools.count()

    def on_start(self) -> None:
        opts = options(self.environment)
        self.ids = scenarios.IdSource(opts.ctx_anonymous_share)
        self.pacer = scenarios.Pacer(opts.ctx_rate)
        self.scenario = scenarios.user_scenario(opts.ctx_scenario, scenarios.HTTP_SCENARIOS, next(self.started))
        self.tagged = opts.ctx_scenario == scenarios.EACH

    def wait_time(self) -> float:
        return self.pacer.wait()

    @task
    def one_request(self) -> None:
        if done_sending(self.environment, self.scenario):
            gevent.sleep(SETTLED_POLL_S)
            return
        opts = options(self.environment)
        kinds = self.kinds_by_scenario.get(self.scenario, scenarios.HTTP_KINDS[scenarios.MIX])
        spec = self.ids.next(kinds, scenarios.HTTP_POST_BYTES)
        body = spec.body() if spec.method == "POST" else None
        name = scenarios.request_name(spec.kind, scenario=self.scenario if self.tagged else None)
        context = {"scenario": self.scenario}
        with self.client.request(
            spec.method, spec.url, headers=spec.headers(), data=body, name=name, catch_response=True, context=context
        ) as response:
            validate = not opts.ctx_skip_validation
            # `is None`, not `or`: the truth of geventhttpclient's headers is a Python-level count of every line
            headers = response.headers if response.headers is not None else {}
            names, origins = assess(spec, response.status_code, headers, response.content or b"", validate)
            RECORDER.tally(names, self.scenario, origins)
            names = failing(names)
            if names:
                response.failure(message(names))
            else:
                response.success()


class PipelineUser(User):
    """HTTP/1.1 pipelining over a raw socket (locust's clients cannot): one request event fired per response."""

    kinds_by_scenario = scenarios.PIPELINE_KINDS
    weight = 1

    def on_start(self) -> None:
        opts = options(self.environment)
        self.ids = scenarios.IdSource(opts.ctx_anonymous_share)
        self.pacer = scenarios.Pacer(opts.ctx_rate / max(1, opts.ctx_pipeline_depth))  # rate counts requests
        self.connection = PipelineClient(self.host)
        self.scenario = scenarios.PIPELINE if opts.ctx_scenario == scenarios.EACH else opts.ctx_scenario
        self.tagged = opts.ctx_scenario == scenarios.EACH

    def on_stop(self) -> None:
        self.connection.close()

    def wait_time(self) -> float:
        return self.pacer.wait()

    @task
    def batch(self) -> None:
        if done_sending(self.environment, self.scenario):
            gevent.sleep(SETTLED_POLL_S)
            return
        opts = options(self.environment)
        kinds = self.kinds_by_scenario.get(self.scenario, scenarios.PIPELINE_KINDS[scenarios.PIPELINE])
        specs = [self.ids.next(kinds, scenarios.PIPELINE_POST_BYTES) for _ in range(max(1, opts.ctx_pipeline_depth))]
        fire = self.environment.events.request.fire
        try:
            timed = self.connection.exchange(specs)
        except (OSError, ProtocolError) as error:
            for spec in specs:
                name = scenarios.request_name(
                    spec.kind, pipelined=True, scenario=self.scenario if self.tagged else None
                )
                context = {"scenario": self.scenario}
                fire(
                    request_type="PIPE",
                    name=name,
                    response_time=0.0,
                    response_length=0,
                    exception=error,
                    context=context,
                )
                RECORDER.tally([f"transport:{type(error).__name__}"], self.scenario)
            return
        for spec, item in zip(specs, timed, strict=False):
            response = item.response
            names, origins = assess(
                spec, response.status, response.headers, response.body, not opts.ctx_skip_validation
            )
            RECORDER.tally(names, self.scenario, origins)
            names = failing(names)
            fire(
                request_type="PIPE",
                name=scenarios.request_name(spec.kind, pipelined=True, scenario=self.scenario if self.tagged else None),
                response_time=item.elapsed_ms,
                response_length=len(response.body),
                response=response,
                context={"scenario": self.scenario},
                exception=LeakFound(message(names)) if names else None,
            )
