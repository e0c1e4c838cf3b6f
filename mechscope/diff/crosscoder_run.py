"""``diff_with_crosscoder``: the whole diff (:func:`mechscope.diff.report.diff_models`) plus a BatchTopK
crosscoder trained on both models' activations at one layer, taken from the diff's own forwards and
topped up with built-in corpus text. What ``mechscope diff --crosscoder`` and the workbench's Diffing
page run (moved here from the CLI so both call one function).

    >>> res = diff_with_crosscoder(base, tuned, seqs, width=2048, k=32, tokens=20_000)   # doctest: +SKIP
    >>> res.to_dict()["crosscoder"]["counts"]                                             # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from mechscope.diff.activations import DiffConfig
from mechscope.diff.steer import DEFAULT_COEFS, DEFAULT_PROMPT


def diff_with_crosscoder(base, tuned, seqs: list[list[int]], cfg: DiffConfig = DiffConfig(), *, width: int = 2048,
                         k: int = 32, tokens: int = 20_000, cc_layer: int | None = None,
                         steps_tokens: int | None = None, save: str | Path | None = None, force: bool = False,
                         targets: Sequence[str] = (), steer_layer: int | None = None,
                         steer_prompt: str = DEFAULT_PROMPT, coefs: Sequence[float] = DEFAULT_COEFS,
                         generate: int = 0, progress: bool = True,
                         phase: Callable[[str], None] | None = None):  # fmt: skip
    """:func:`diff_models` with ``result.crosscoder`` filled (and the crosscoder saved to ``save``).

    ``cc_layer``: the crosscoder's layer (default the diff's best lens layer, found by a first cheap pass).
    ``tokens``: paired activation rows it trains on; ``steps_tokens``: tokens seen in training (default
    10 × the rows). ``phase(name)``, if given, is called before each stage (``find-layer``, ``diff``,
    ``top-up``, ``train``, ``report``): a progress report, and a place to stop by raising.
    """
    from dataclasses import replace

    from mechscope.diff import lens as L
    from mechscope.diff.activations import diff_activations
    from mechscope.diff.crosscoder import CrosscoderConfig, save_crosscoder
    from mechscope.diff.crosscoder_train import PairActivations, crosscoder_report, top_up, train_crosscoder
    from mechscope.diff.report import diff_models
    from mechscope.errors import ConfigError
    from mechscope.sae.config import SAETrainConfig

    step = phase or (lambda name: None)
    for name, v in (("width", width), ("k", k), ("tokens", tokens)):
        if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
            raise ConfigError(f"crosscoder {name} must be a positive integer, got {v!r}")
    if k > width:
        raise ConfigError(f"crosscoder k ({k}) cannot exceed its width ({width})")
    layer = cc_layer
    if layer is None:  # the best layer needs the diff first: a cheap pass to find it
        step("find-layer")
        stats = diff_activations(base, tuned, seqs, cfg, progress=progress)
        logits = L.lens_logits(tuned, stats.mean_diff, stats.base_rms)
        layer = L.best_layer(stats.layers, logits)
    if not 0 <= layer < base.cfg.n_layers:
        raise ConfigError(f"--cc-layer {layer} out of range: the models have {base.cfg.n_layers} layers")
    acts = PairActivations(layer, limit=tokens)
    step("diff")
    res = diff_models(base, tuned, seqs, cfg, targets=targets, steer_layer=steer_layer, steer_prompt=steer_prompt,
                      coefs=coefs, generate=generate, sink=acts.sink, sink_layer=layer, progress=progress)  # fmt: skip
    step("top-up")
    top_up(acts, base, tuned, tokens, cfg.seq_len, cfg.batch_size, progress)
    x = acts.x()
    steps = steps_tokens or 10 * int(x.shape[0])
    tc = SAETrainConfig(tokens=steps, batch_tokens=min(2048, int(x.shape[0])), checkpoint_every=0)
    tc = replace(tc, log_every=max(1, min(tc.log_every, tc.steps)))
    info = {"base": base.name, "tuned": tuned.name, "base_fingerprint": base.fingerprint,
            "tuned_fingerprint": tuned.fingerprint, "layer": layer, "hook": f"blocks.{layer}.hook_resid_post",
            "pair_fingerprint": f"{base.fingerprint}+{tuned.fingerprint}", "positions": "all but BOS"}  # fmt: skip
    step("train")
    cc, _ = train_crosscoder(x, CrosscoderConfig(base.cfg.d_model, width, k), tc, info, progress)
    step("report")
    j = res.stats.layers.index(layer)
    res.crosscoder = crosscoder_report(cc, acts, tuned, rms=float(res.stats.base_rms[j]))
    if save is not None:
        res.crosscoder["path"] = str(save_crosscoder(cc, save, force=force))
    return res
