"""The report's soak section, rendered from results/soak/summary.json and any follow-up soak's summary.json."""

from __future__ import annotations

from pathlib import Path

from scripts.common.results import read_json
from scripts.soak import memory
from scripts.soak.verdict import FAILED, INCOMPLETE, INCONCLUSIVE, PASSED, headline, pair_verdict

SUMMARY_NAME = "summary.json"


def _mib(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.2f}" if signed else f"{value:.1f}"


def _growth(growth: dict | None) -> str:
    if not growth or growth.get("mib_per_100k_requests") is None:
        return "-"
    text = f"{_mib(growth['mib_per_100k_requests'], signed=True)} MiB"
    if growth.get("standard_error_mib") is not None:
        text += f" ± {growth['standard_error_mib']:.2f}"
    return text if growth.get("judged") else f"{text} (not judged: {growth.get('why_not_judged')})"


def _resolution(growth: dict) -> str:
    """What the rule can catch here: the bound plus SIGMAS standard errors, and the noise floor over the fitted
    requests, in bytes kept per request (recomputed from the figures: older results stated the floor alone)."""
    if not growth.get("judged"):
        return "-"
    value = memory.resolution_bytes(growth.get("standard_error_mib"), growth.get("fitted_requests") or 0)
    return "-" if value is None else f"{value:,}"


def _result(pair: dict) -> str:
    verdict, why = pair_verdict(pair)
    if verdict == "passed":
        return "ok"
    return f"**{verdict}**: {why}" if verdict == "failed" else f"inconclusive: {why}"


def _followup(path: Path) -> list[str]:
    """One line per pair of a follow-up soak (a pair run again alone, longer, to tell a plateau from a leak)."""
    if not path.exists():
        return []
    summary = read_json(path)
    lines = ["", f"Follow-up (`results/{path.parent.name}/`), the same rule on more requests:", ""]
    for pair in summary["pairs"]:
        growth = pair.get("growth") or {}
        verdict = {"passed": "passed", "failed": "**failed**"}.get(pair_verdict(pair)[0], "**inconclusive**")
        lines.append(
            f"- `{pair['variant']}` on {pair['server']['label']}, alone: {pair['requests']:,} requests, leak "
            f"{pair['leak']} / lost {pair['lost']} / other {pair['other']}, RSS {_mib(growth.get('rss_mib_first'))} → "
            f"{_mib(growth.get('rss_mib_last'))} MiB (max {_mib(growth.get('rss_mib_max'))}), growth {_growth(growth)} "
            f"per 100k over {growth.get('fitted_requests', 0):,} requests after the warm-up (resolution "
            f"{_resolution(growth)} bytes per request): {verdict}; commit "
            f"{str(((summary.get('environment') or {}).get('git') or {}).get('commit'))[:12]}."
        )
    return lines


def _pair_name(pair: dict) -> str:
    return f"`{pair['variant']}` on {pair['server']['label']}"


def _pair_figure(pair: dict) -> str:
    """What failed a pair: its memory growth (and what it added up to), or why else it failed."""
    growth = pair.get("growth") or {}
    if growth.get("passed") is False and not (pair["leak"] or pair["lost"] or pair["other"]):
        return (
            f"{_growth(growth)} per 100k requests, {growth.get('grown_mib', 0):.1f} MiB over "
            f"{growth.get('fitted_requests', 0):,} requests"
        )
    return pair_verdict(pair)[1] or "failed"


def _followed_up(pair: dict, followup: dict | None) -> str:
    """The follow-up's verdict on the same pair, when one was run."""
    for again in (followup or {}).get("pairs", []):
        if again["variant"] == pair["variant"] and again["server"]["label"] == pair["server"]["label"]:
            growth = again.get("growth") or {}
            verdict = pair_verdict(again)[0]
            return (
                f"; the follow-up, alone and longer: {_growth(growth)} per 100k over "
                f"{growth.get('fitted_requests', 0):,} requests, {verdict}"
            )
    return ""


def failure_lines(summary: dict, followup: dict | None) -> list[str]:
    """One line per failed pair: which, its figure, and the follow-up's verdict next to it."""
    return [
        f"{_pair_name(pair)} ({_pair_figure(pair)}{_followed_up(pair, followup)})"
        for pair in summary["pairs"]
        if pair_verdict(pair)[0] == "failed"
    ]


# The soak's headline in words, from its verdict (scripts.soak.verdict.headline).
TITLE = {
    PASSED: "passed",
    FAILED: "failed on {failed} of {pairs} pairs",
    INCONCLUSIVE: "inconclusive: nothing failed, but some pair could not be judged",
    INCOMPLETE: "incomplete: interrupted or short of its budget ({failed} pairs failed so far)",
}


def _judged(results_dir: Path, followup_dir: Path | None) -> tuple[dict, list[str], str] | None:
    """The soak's summary, its failed pairs (with the follow-up's verdict beside each) and its headline in words."""
    path = Path(results_dir) / SUMMARY_NAME
    if not path.exists():
        return None
    summary = read_json(path)
    followup_path = Path(followup_dir) / SUMMARY_NAME if followup_dir else None
    followup = read_json(followup_path) if followup_path and followup_path.exists() else None
    failed = failure_lines(summary, followup)
    return summary, failed, TITLE[headline(summary)].format(failed=len(failed), pairs=len(summary["pairs"]))


def soak_headline(results_dir: Path, followup_dir: Path | None = None) -> list[str]:
    """The first screen's line on the soak: its verdict, and which pairs failed with the follow-up's verdict."""
    judged = _judged(results_dir, followup_dir)
    if judged is None:
        return []
    summary, failed, title = judged
    named = ": " + "; ".join(failed) if headline(summary) == FAILED else ""
    return ["", f"Soak: {summary['requests']:,} validated requests, leak {summary['leak']}: {title}{named}."]


def soak_section(results_dir: Path, followup_dir: Path | None = None) -> list[str]:
    """Markdown lines: the soak's verdict, totals and one row per (approach, server configuration), then any follow-up
    soak's pairs; [] if no soak."""
    judged = _judged(results_dir, followup_dir)
    if judged is None:
        return []
    summary, failed, title = judged
    verdict = {
        PASSED: "passed",
        FAILED: "**failed**",
        INCONCLUSIVE: "**inconclusive** (nothing failed, but some pair could not be judged: see its result)",
        INCOMPLETE: "**incomplete** (interrupted or unfinished: the figures cover what was done)",
    }[headline(summary)]
    bound = summary["growth_bound_mib_per_100k_requests"]
    floor = f"{summary['growth_noise_floor_mib']:g} MiB" if "growth_noise_floor_mib" in summary else "no floor"
    lines = [
        "## Soak",
        "",
        f"**Verdict: {title}.**",
        "",
        *(f"- {line}" for line in failed),
        "",
        f"`make soak`: {summary['requests']:,} validated requests of {summary['budget']:,} planned, every scenario at "
        f"once, on the {len(summary['plan'])} approach and server configuration pairs the per-server verdicts call "
        f"correct, one long-lived server each: {verdict}. Leak {summary['leak']}, lost {summary['lost']}, "
        f"other (unexpected status, transport) {summary['other']}. Server memory (RSS, every process of the server) "
        f"sampled every second; growth is the least-squares slope of RSS against requests served, after the first "
        f"{summary['growth_warmup_share']:.0%} of a server's requests (± its standard error); a server fails when its "
        f"growth exceeds {bound:g} MiB per 100k requests by more than {summary.get('growth_sigmas', 3):g} standard "
        f"errors and when what it adds up to over those requests exceeds {floor} (the allocator's high-water "
        f"noise: two of the largest request bodies); judged when at least {summary['growth_min_fit_requests']:,} "
        "requests follow the warm-up (a pair not judged is inconclusive, never passed). The standard error is taken "
        "by batch means, since one-second RSS samples are autocorrelated. The resolution column is the smallest "
        "memory kept per request that the rule fails on that pair: the bound plus "
        f"{summary.get('growth_sigmas', 3):g} standard errors, or the noise floor over its fitted requests, whichever "
        "is larger.",
        "",
        "| approach | server configuration | requests | leak / lost / other | RSS first → last (max), MiB "
        "| growth per 100k requests | resolution, bytes per request | open fds at end | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for pair in summary["pairs"]:
        growth = pair.get("growth") or {}
        fds = pair.get("fds_last")
        result = _result(pair)
        lines.append(
            f"| `{pair['variant']}` | {pair['server']['label']} | {pair['requests']:,} "
            f"| {pair['leak']} / {pair['lost']} / {pair['other']} "
            f"| {_mib(growth.get('rss_mib_first'))} → {_mib(growth.get('rss_mib_last'))} "
            f"({_mib(growth.get('rss_mib_max'))}) | {_growth(growth)} | {_resolution(growth)} "
            f"| {fds if fds is not None else '-'} | {result} |"
        )
    environment = summary.get("environment", {})
    lines += [
        "",
        f"{summary['elapsed_s'] / 60:.1f} min on {environment.get('cpu', '?')} ({environment.get('cpu_count', '?')} "
        f"cores), commit {str((environment.get('git') or {}).get('commit'))[:12]}; raw figures and every memory sample "
        "in `results/soak/`.",
        *(_followup(Path(followup_dir) / SUMMARY_NAME) if followup_dir else []),
    ]
    return lines
