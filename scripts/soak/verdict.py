"""The soak's verdicts: per pair passed, failed or inconclusive (with why), and the headline of the whole soak."""

from __future__ import annotations

PASSED, FAILED, INCONCLUSIVE, INCOMPLETE = "PASSED", "FAILED", "INCONCLUSIVE", "INCOMPLETE"


def pair_verdict(pair: dict) -> tuple[str, str | None]:
    """(passed | failed | inconclusive, why). Failed: a leak, a loss, an unexpected status, a server that died, growth
    above the rule; these count whatever else happened. Inconclusive: growth not judged, or the harness stopped the
    pair (a generator that died, an unfinished pair). Passed only on complete, judged evidence."""
    growth = pair.get("growth") or {}
    if pair["leak"] or pair["lost"] or pair["other"]:
        return "failed", f"leak {pair['leak']} / lost {pair['lost']} / other {pair['other']}"
    # results written before `server_died` existed say it in the error alone
    if pair.get("server_died") or "the server exited with" in (pair.get("error") or ""):
        return "failed", (pair.get("error") or "the server died").splitlines()[0]
    if growth.get("passed") is False:
        return "failed", "memory growth above the rule"
    if pair.get("error"):
        return "inconclusive", pair["error"].splitlines()[0]
    if not pair["complete"]:
        return "inconclusive", "not finished"
    if not growth.get("judged"):
        return "inconclusive", f"growth not judged: {growth.get('why_not_judged') or 'no memory samples'}"
    return "passed", None


def pair_passed(pair: dict) -> bool:
    return pair_verdict(pair)[0] == "passed"


def headline(summary: dict) -> str:
    """FAILED on any failed pair (interrupted or not), INCOMPLETE when interrupted or short of the budget, else
    INCONCLUSIVE when some pair was not judged, PASSED only when every pair passed on the whole budget."""
    verdicts = [pair_verdict(pair)[0] for pair in summary["pairs"]]  # re-judged from the figures, not a stored flag
    if "failed" in verdicts:
        return FAILED
    if not summary["complete"] or summary["requests"] < summary["budget"]:
        return INCOMPLETE
    if "inconclusive" in verdicts:
        return INCONCLUSIVE
    return PASSED
