"""Judge a finished soak again with today's rule, from the memory samples its pair files kept: no server is run.

A rule that changes (the batch-means standard error, unjudged pairs inconclusive) must not leave the committed soak
judged by the old one; its per-pair JSON keeps every sample, so the verdicts are recomputed from the evidence itself.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from scripts.common.results import read_json, write_json
from scripts.common.staged import staged_run
from scripts.soak import memory
from scripts.soak.verdict import headline, pair_passed, pair_verdict

SUMMARY_NAME = "summary.json"


def rejudged_pair(pair: dict) -> dict:
    """A pair file's content with its growth recomputed from its samples."""
    points = [(sample["requests"], sample["rss"]) for sample in pair["samples"]]
    return {**pair, "growth": memory.growth(points, pair["requests"])}


def rejudge(directory: Path) -> dict:
    """Every pair of the soak under `directory` judged again; the summary and pair files replaced in one step."""
    summary = read_json(directory / SUMMARY_NAME)
    with staged_run(directory, origin=(SUMMARY_NAME,)) as stage:
        pairs = []
        for entry in summary["pairs"]:
            pair = rejudged_pair(read_json(directory / entry["file"]))
            write_json(stage.dir / entry["file"], pair)
            verdict, why = pair_verdict(pair)
            pairs.append(
                {**entry, "growth": pair["growth"], "passed": pair_passed(pair), "verdict": verdict, "why": why}
            )
        for other in directory.iterdir():  # anything else the soak wrote (logs) stays as it was
            if not (stage.dir / other.name).exists() and other.name != SUMMARY_NAME and other.is_file():
                shutil.copy2(other, stage.dir / other.name)
        again = {**summary, "pairs": pairs}
        again["passed"] = again["complete"] and again["requests"] >= again["budget"] and all(p["passed"] for p in pairs)
        again["growth_standard_error"] = f"batch means over {memory.BATCHES} batches (autocorrelated samples)"
        again["rejudged_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        again["verdict"] = headline(again)
        write_json(stage.dir / SUMMARY_NAME, again)
    return again
