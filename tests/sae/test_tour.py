"""The tour's SAE section runs on any model, reuses its SAE on a second run, and is honest about doubt."""

from __future__ import annotations

from mechscope.sae import tour
from tests.tiny import tiny_model


def test_sae_tour_section_on_a_tiny_model(tmp_path, monkeypatch, one_thread):
    monkeypatch.setattr(tour, "TOKENS", 4064)
    monkeypatch.setattr(tour, "WIDTH", 64)
    monkeypatch.setattr(tour, "K", 4)
    model = tiny_model("gemma3")
    lines = tour.tour(model, tmp_path)
    text = "\n".join(lines)
    assert "trained just now" in text and "blocks.1.hook_resid_post" in text
    assert (tmp_path / tour.SAE_DIR / "sae.safetensors").is_file() and (tmp_path / tour.PNG_NAME).is_file()
    said = [m in text for m in ("promotes words of doubt", "No latent of this small SAE", "None of the words of doubt")]
    assert sum(said) == 1
    assert sum(" × W_dec[" in line for line in lines) == len(tour.DOSES)
    again = "\n".join(tour.tour(model, tmp_path))
    assert "reused from" in again
