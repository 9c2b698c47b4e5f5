"""The report's advice rules, each proven on a fixture built to break it, and its first screen and links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from apps.harness import registry
from scripts.common import results as resultfiles
from scripts.report import decision, report
from scripts.versions import report as versions_report
from scripts.versions.stacks import STACKS
from tests.test_report import grid_cell

FIRST_SCREEN_LINES, LONGEST_LINE = 60, 300
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
WEB = re.compile(r"^[a-z][a-z0-9+.-]*:")


def row(name: str, verdict: str, instructions: float | None = None, band: float = 1.0) -> decision.Row:
    counted = {}
    if instructions is not None:
        versus = {"added_pct": instructions / 1e4 - 100, "threshold_pct": band, "verdict": "more instructions"}
        counted = {"get": {"instructions": instructions, "vs_baseline": versus}}
    outcome = decision.Outcome(where={"load pipeline on daphne": decision.Counter()})
    return decision.Row(registry.get(name), outcome, verdict, None, None, [], counted)


def test_a_pitfall_that_is_correct_and_cheapest_on_one_server_is_never_recommended() -> None:
    pitfall, approach = "contextvar_conditional", "explicit"
    assert registry.get(pitfall).category == registry.PITFALL
    load = {
        "leak_grid": [
            grid_cell(pitfall, "hypercorn-asyncio"),
            grid_cell(pitfall, "uvloop-httptools", {"service.user_id:leak": 3}),
            grid_cell(approach, "hypercorn-asyncio"),
            grid_cell(approach, "uvloop-httptools"),
        ]
    }
    rows = [row(pitfall, decision.IMMUNE, 1.00e6), row(approach, decision.IMMUNE, 1.50e6)]  # the pitfall is cheaper
    text = "\n".join(decision.per_server_lines(rows, load) + decision.recommendation_lines(rows))
    assert f"cheapest: `{approach}`" in text and f"cheapest: `{pitfall}`" not in text
    assert decision.answer(rows).startswith(f"**Use `{approach}`**")
    assert f"`{pitfall}` (a pitfall: correct on hypercorn; leaks another request's data on uvicorn)" in text


def test_two_approaches_inside_the_aa_band_are_a_tie_never_a_cheapest() -> None:
    rows = [row("explicit", decision.IMMUNE, 1.000e6, band=1.5), row("request_state", decision.IMMUNE, 1.010e6)]
    assert decision.cheapest(rows) == rows
    assert decision.answer(rows).startswith("**Use any of `explicit`, `request_state`**")
    assert "tie for cheapest" in decision.cheapest_phrase(rows)
    apart = [row("explicit", decision.IMMUNE, 1.000e6, band=1.5), row("request_state", decision.IMMUNE, 1.020e6)]
    assert [r.variant.name for r in decision.cheapest(apart)] == ["explicit"]  # 2% > the 1.5% band: resolved


def test_without_any_resolving_measurement_nothing_is_called_cheapest() -> None:
    rows = [row("explicit", decision.IMMUNE), row("request_state", decision.IMMUNE)]
    assert len(decision.cheapest(rows)) == 2


def test_labels_say_what_a_variant_is_never_whether_it_is_advised() -> None:
    assert set(registry.CATEGORIES) == {registry.APPROACH, registry.PITFALL, registry.CONTROL, registry.LIBRARY}
    assert not {"recommended", "avoid", "correct", "safe"} & {v.category for v in registry.VARIANTS}


def _stack_result(plain_on_default: dict[str, int]) -> dict:
    (variant,) = registry.tagged(registry.PLAIN_CONTEXTVAR)
    scenario = {"requests": 100, "leak": 0, "lost": 0, "other": 0}
    runs = {
        "uvloop-httptools": {"status": "ran", "scenarios": {"pipeline": {**scenario, **plain_on_default}}},
        "uvloop-httptools-reset": {"status": "ran", "scenarios": {"pipeline": scenario}},
    }
    hunt = {"configs": list(runs), "runs": {variant: runs}, "reset_flag": True}
    return {"status": "ran", "stack": {"name": "fixture", "python": "3.11", "why": "uvicorn 0.39: never leaks"},
            "inprocess": {"variants": {}}, "hunt": hunt}  # fmt: skip


def test_a_hand_written_note_the_data_contradicts_is_not_printed_the_data_is() -> None:
    leaking = _stack_result({"leak": 4})
    line = "\n".join(versions_report.stacks_lines([{**leaking, "environment": {"packages": {}}}]))
    assert "never leaks" not in line  # the note's claim is not repeated as a fact
    assert "leak on uvloop-httptools" in versions_report.server_behaviour(leaking)
    assert "ok on uvloop-httptools" in versions_report.server_behaviour(_stack_result({}))


BEHAVIOUR = re.compile(r"\b(leak|leaks|leaking|context|copies|empty|reverted|fix|fixed|clean|snapshot)\b", re.I)


@pytest.mark.parametrize("stack", STACKS, ids=lambda stack: stack.name)
def test_stack_notes_say_what_a_stack_is_not_what_it_does(stack) -> None:
    assert not BEHAVIOUR.search(stack.why), f"{stack.name}: behaviour is computed from the runs, not written"


def test_the_first_screen_fits_and_every_link_resolves() -> None:
    text = resultfiles.REPORT_PATH.read_text()
    lines = text.splitlines()
    assert len(lines) <= FIRST_SCREEN_LINES
    assert max(len(line) for line in lines) <= LONGEST_LINE
    assert "## The answer" in text and "charts/decision.png" in text
    assert text == report.render(resultfiles.RESULTS), "run `make report`"
    seen: set[Path] = set()
    pending = [resultfiles.REPORT_PATH]
    while pending:
        page = pending.pop()
        seen.add(page)
        for target in LINK.findall(page.read_text()):
            if WEB.match(target):
                continue
            found = (page.parent / target).resolve()
            assert found.exists(), f"{page.relative_to(resultfiles.RESULTS)} links {target}, which does not exist"
            if found.suffix == ".md" and found not in seen and resultfiles.RESULTS in found.parents:
                pending.append(found)
    linked = {page.relative_to(resultfiles.RESULTS) for page in seen}
    assert {report.DECISION_MD, report.BENCH_MD, report.LOAD_MD, report.SOAK_MD, report.VERSIONS_MD} <= linked


def test_detail_pages_are_regenerated_not_edited(tmp_path: Path) -> None:
    from tests.test_report import write_fixture

    root = write_fixture(tmp_path, leaking="explicit")
    first = {path: path.read_bytes() for path in report.write_report(root)}
    again = {path: path.read_bytes() for path in report.write_report(root)}
    assert first == again
    assert (root / report.DECISION_MD).exists()
    assert "(../REPORT.md)" in (root / report.BENCH_MD).read_text()


def test_a_fix_that_drops_the_startup_context_is_told_apart_from_one_that_keeps_it() -> None:
    """The empty-Context mechanisms and the reset setting are correct but change the app: the verdicts say so."""
    entry = {"entry.request_id:leak": 5}
    load = {
        "leak_grid": [
            grid_cell("contextvar_snapshot", "uvloop-httptools"),
            grid_cell("contextvar_isolated", "uvloop-httptools", dropped=100),
            grid_cell("contextvar_asgi", "uvloop-httptools", entry),
            grid_cell("contextvar_asgi", "uvloop-httptools-reset", dropped=100),
        ]
    }
    verdicts = decision.per_server(load)
    assert verdicts[("contextvar_snapshot", "uvicorn")].verdict == decision.CORRECT
    assert verdicts[("contextvar_isolated", "uvicorn")].verdict == decision.DROPS_STARTUP
    asgi = verdicts[("contextvar_asgi", "uvicorn")]
    assert asgi.verdict == decision.CORRECT_WITH and asgi.setting.endswith("which drops startup context")
    rows = {r.variant.name: r for r in decision.decide({"load": load})}
    assert rows["contextvar_snapshot"].verdict == decision.IMMUNE
    assert rows["contextvar_isolated"].verdict == decision.IMMUNE_DROPS
    assert rows["contextvar_asgi"].verdict == decision.SAFE_WITH_RESET + decision.RESET_DROPS
    lines = "\n".join(decision.per_server_lines(list(rows.values()), load))
    assert "Correct, but what the app set before its first request is gone: `contextvar_isolated`" in lines
    assert decision.answer(list(rows.values())).startswith("**Use `contextvar_snapshot`**")
