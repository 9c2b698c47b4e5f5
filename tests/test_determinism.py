"""The CI profile draws the same hypothesis cases on every run: a commit's CI result cannot change by chance."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import CI_PROFILE, PROFILE_ENV

IN_CI_PROFILE = os.environ.get(PROFILE_ENV, CI_PROFILE) == CI_PROFILE


def drawn() -> list[str]:
    """The cases one property draws, in order."""
    seen: list[str] = []

    @settings(max_examples=50)
    @given(st.text(max_size=30))
    def property_(text: str) -> None:
        seen.append(text)

    property_()
    return seen


@pytest.mark.skipif(not IN_CI_PROFILE, reason="the long profile explores new cases on purpose")
def test_the_ci_profile_is_derandomized_and_reads_no_database() -> None:
    assert settings.default.derandomize is True
    assert settings.default.database is None


@pytest.mark.skipif(not IN_CI_PROFILE, reason="the long profile explores new cases on purpose")
def test_two_runs_of_a_property_draw_the_same_cases() -> None:
    first, second = drawn(), drawn()
    assert len(first) > 10 and first == second
