"""The superposition section of `mechscope tour`: the pentagon and the honest numbers, in seconds."""

from __future__ import annotations

import time


def test_tour_draws_and_reports(tmp_path):
    from mechscope.labs.superposition.tour import tour

    start = time.perf_counter()
    lines = tour(tmp_path)
    text = "\n".join(lines)
    assert "store all five as a pentagon" in text and "Welch bound" in text and "within 89–91°" in text
    assert (tmp_path / "superposition_pentagon.png").stat().st_size > 10_000
    assert (tmp_path / "superposition_angles.png").stat().st_size > 10_000
    assert time.perf_counter() - start < 60
