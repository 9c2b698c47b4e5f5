"""One full request through a variant's ASGI app, in-process: what its way of sharing context costs per request.

The app is driven with a raw scope, `receive` and `send` (apps.harness.inprocess): no socket and no HTTP client is
timed. The request carries the identity headers the load tests send (request, user and tenant id); GET reads an item,
POST also reads a small body. Every worker first sends one request and checks the response with the leak checker: a
variant that does not do its work (wrong app, context lost where the registry says it travels) is not timed. The worker
then writes what the app itself answered (`ctxbench_app`) into the metadata of every value it times.

    python microbench/bm_apps.py --variant contextvar_asgi -o app_contextvar_asgi.json
"""

from __future__ import annotations

import pyperf

from apps.harness import inprocess, registry, traffic
from apps.harness.checker import classify, failures
from microbench.asgi_timing import TIMER_NAME, time_requests, versions

DEFAULT_VARIANT = registry.reference()
METHODS = (traffic.GET, traffic.POST)  # benchmark names: app_get, app_post (the same in every variant's file)
REQUEST_PREFIX = "bench"
REQUEST_SEQ = 1
REQUEST_ANONYMOUS = False  # every identity header present, so every field must travel


class AppDidNotWork(AssertionError):
    """The app's answer shows it is not the variant asked for, or that it did not carry the context as registered."""


def bench_name(method: str) -> str:
    return f"app_{method}"


def request_spec(method: str) -> traffic.RequestSpec:
    return traffic.request(method, REQUEST_PREFIX, REQUEST_SEQ, REQUEST_ANONYMOUS)


def verify(variant: registry.Variant, app: object, spec: traffic.RequestSpec) -> dict[str, str | int]:
    """Send one request and check it; return the proof as metadata. Raises AppDidNotWork."""
    # In a copy of the import-time context, as a server serves it (startup values visible).
    reply = inprocess.run(inprocess.call(app, spec))  # a copy: nothing it sets reaches the timed requests
    if reply.status != 200:
        raise AppDidNotWork(f"{variant.name} {spec.kind}: status {reply.status}")
    body = reply.json()
    if body.get("variant") != variant.name:
        raise AppDidNotWork(f"asked for {variant.name}, the app answered as {body.get('variant')!r}")
    found = set(failures(classify(spec.sent, reply.headers, body)))
    allowed = variant.expected_in(registry.CONCURRENT)
    if not found <= allowed:
        raise AppDidNotWork(f"{variant.name} {spec.kind}: unexpected {sorted(found - allowed)}")
    if spec.kind == traffic.POST and body.get("body_bytes") != spec.body_size:
        raise AppDidNotWork(f"{variant.name}: read {body.get('body_bytes')} of {spec.body_size} body bytes")
    return {"ctxbench_app": body["variant"], "ctxbench_check": f"ok ({len(found)} registered failures)"}


def add_metadata(runner: pyperf.Runner, variant: registry.Variant) -> None:
    runner.metadata["description"] = "one request through a variant app in-process (raw ASGI), CPU time"
    runner.metadata["timer"] = TIMER_NAME
    runner.metadata["ctxbench_variant"] = variant.name
    runner.metadata["ctxbench_category"] = variant.category
    runner.metadata["ctxbench_library"] = variant.library or "none"
    runner.metadata["ctxbench_series"] = runner.args.series
    runner.metadata["ctxbench_headers"] = ",".join(request_spec(traffic.GET).headers())
    runner.metadata["ctxbench_post_body_bytes"] = request_spec(traffic.POST).body_size
    runner.metadata.update(versions())


def add_cmdline_args(cmd: list[str], args: object) -> None:
    """pyperf workers get their own command line, not the parent's environment: pass the choice on explicitly."""
    cmd.extend(("--variant", args.variant, "--series", args.series))


if __name__ == "__main__":
    runner = pyperf.Runner(add_cmdline_args=add_cmdline_args)
    runner.argparser.add_argument("--variant", default=DEFAULT_VARIANT, choices=list(registry.BY_NAME))
    runner.argparser.add_argument("--series", default="main", help="label of this copy (a second baseline: aa)")
    args = runner.parse_args()
    variant = registry.get(args.variant)
    add_metadata(runner, variant)
    # Only workers time anything; the manager process just spawns them, so it does not load the app.
    app = variant.load() if args.worker else None
    for method in METHODS:
        spec = request_spec(method)
        proof = verify(variant, app, spec) if args.worker else {}
        runner.bench_time_func(bench_name(method), time_requests, app, spec, metadata=proof)
