"""The tour's steering section runs on any model, reuses its vector on a second run, and states where the
effect peaks and whether it reverses."""

from __future__ import annotations

from mechscope.tour import steering
from tests.tiny import tiny_model


def test_steering_tour_section_on_a_tiny_model(tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr(steering, "COEFS", (1.0, 4.0))
    monkeypatch.setattr(steering, "GENERATE", 2)
    model = tiny_model("gemma3")
    lines = steering.tour(model, tmp_path)
    text = "\n".join(lines)
    assert "saved to" in text and "blocks.1.hook_resid_post" in text and "60 doubtful and 60 confident" in text
    assert (tmp_path / steering.VECTOR_DIR / "tensors.safetensors").is_file() and (tmp_path / steering.PNG_NAME).is_file()
    rows = [line for line in lines if line.startswith("  c = ")]
    assert len(rows) == len(steering.COEFS) + 1 and rows[0].startswith("  c = 0 ") and "+0.00 nats" in rows[0]
    assert sum("The effect peaks at c = " in line for line in lines) == 1
    again = "\n".join(steering.tour(model, tmp_path))
    assert "reused from" in again
    assert [x for x in again.splitlines() if x.startswith("  c = ")] == rows  # the same vector, the same greedy sweep


def test_summary_words():
    def col(c, s):
        return {"coef": c, "target_logprob_shift": s, "target_ranks": [3]}

    up = {"coefs": [col(0.5, 0.2), col(1.0, 0.9), col(2.0, -0.4)]}
    assert steering.summary(up).startswith("The effect peaks at c = 1 (+0.90 nats, rank 3) and reverses by c = 2 (-0.40")
    assert "stays positive" in steering.summary({"coefs": [col(0.5, 0.2), col(1.0, 0.9)]})
