// Diffing: the loaded model (base) against a fine-tune folder under --runs. POST /api/diff starts a job
// (polled, cancellable) whose result is `mechscope diff --json`: diff norms by layer × position (heatmap),
// per-layer relative norms, the promoted tokens (bars), the steering curve, and the crosscoder when asked.

import { jobRunner } from "./job_poll.js";

export async function render(root, ctx) {
  const { api, el, visible, showError, loadPlotly } = ctx;
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const folders = await listFolders(api);
  const tuned = el("input", { id: "diff-tuned", list: "diff-tuned-list", size: 28, value: params.get("tuned") || folders[0] || "", placeholder: "a fine-tuned model folder under --runs" });
  const list = el("datalist", { id: "diff-tuned-list" }, folders.map((f) => el("option", { value: f })));
  const prompts = el("textarea", { class: "json", id: "diff-prompts" },
    "The ocean is deep and the sea is wide.\nMy cat sleeps on the sofa all day.\nThe capital of France is Paris.\nI went to the market to buy some bread.");
  const builtin = el("input", { type: "checkbox", id: "diff-builtin" });
  const seqLen = el("input", { id: "diff-seq-len", class: "small", type: "number", min: 2, value: 64 });
  const coefs = el("input", { id: "diff-coefs", value: "0,0.5,1,2,4", size: 14 });
  const targets = el("input", { id: "diff-targets", size: 18, placeholder: "default: promoted tokens" });
  const gen = el("input", { id: "diff-generate", class: "small", type: "number", min: 0, max: 64, value: 0 });
  const cc = el("input", { type: "checkbox", id: "diff-crosscoder" });
  const width = el("input", { id: "diff-width", class: "small", type: "number", value: 2048 });
  const k = el("input", { id: "diff-k", class: "small", type: "number", value: 32 });
  const tokens = el("input", { id: "diff-cc-tokens", class: "small", type: "number", value: 20000 });
  const run = el("button", { id: "diff-run" }, "Run diff");
  const cancel = el("button", { class: "secondary", id: "diff-cancel" }, "Cancel");
  const status = el("span", { class: "muted", id: "diff-status" });
  const out = el("div", { id: "diff-out" });
  root.append(
    el("h1", {}, "Diffing"),
    el("div", { class: "controls" }, el("label", {}, "tuned model folder (base = the loaded model)", tuned, list),
      el("label", {}, "seq len", seqLen), el("label", {}, "steering coefs", coefs), el("label", {}, "target words", targets), el("label", {}, "generate", gen)),
    el("label", { class: "legend" }, "Prompts, one per line (or ", builtin, " held-out built-in corpus contexts)"), prompts,
    el("div", { class: "controls" }, el("label", {}, el("span", {}, cc, " crosscoder"), ""), el("label", {}, "width", width), el("label", {}, "k", k),
      el("label", {}, "crosscoder tokens", tokens), run, cancel, status),
    out,
  );
  const runJob = jobRunner(ctx, status, cancel);

  run.addEventListener("click", async () => {
    showError(root, null);
    run.disabled = true;
    try {
      const cs = coefs.value.split(",").map((s) => Number(s.trim()));
      if (cs.some((c) => !Number.isFinite(c))) throw new Error(`steering coefs must be numbers like 0,1,2; got "${coefs.value}"`);
      const body = { tuned: tuned.value, seq_len: Number(seqLen.value) || 64, coefs: cs, generate: Number(gen.value) || 0,
        targets: targets.value.split(",").map((s) => s.trim()).filter(Boolean) };
      if (builtin.checked) body.builtin_prompts = true; else body.prompts = prompts.value.split("\n").map((s) => s.trim()).filter(Boolean);
      if (cc.checked) Object.assign(body, { crosscoder: true, width: Number(width.value), k: Number(k.value), tokens: Number(tokens.value) });
      draw(await runJob("/api/diff", body));
    } catch (e) { showError(root, e); }
    finally { run.disabled = false; }
  });

  async function draw(d) {
    const Plotly = await loadPlotly();
    const heat = el("div", { id: "diff-heatmap", style: "width:560px;height:360px" });
    const layers = el("div", { id: "diff-layers", style: "width:380px;height:300px" });
    const promoted = el("div", { id: "diff-promoted", style: "width:380px;height:420px" });
    const steerPlot = el("div", { id: "diff-steer", style: "width:420px;height:300px" });
    const xc = d.crosscoder ? crosscoderPanel(d.crosscoder) : null;
    out.replaceChildren(
      el("div", { class: "legend" }, `${d.base} → ${d.tuned}: ${d.prompts} prompts, ${d.tokens} tokens (BOS left out); best lens layer ${d.best_layer}; ${d.seconds} s`),
      el("div", { class: "row" }, el("div", { class: "panel" }, heat), el("div", { class: "panel" }, layers)),
      el("div", { class: "row" }, el("div", { class: "panel" }, promoted), el("div", { class: "panel" }, steerPlot,
        el("div", { id: "diff-steer-texts" }, d.steer.filter((s) => s.text).map((s) => el("div", { class: "legend" }, `c=${s.coef}: `, el("span", { class: "continuation" }, s.text)))))),
      xc || "",
    );
    const m = { l: 50, r: 10, t: 36, b: 40 };
    const cfg = { displayModeBar: false };
    const L = d.layers.map((r) => r.layer);
    Plotly.newPlot(heat, [{ type: "heatmap", z: d.norm_by_position, y: L, colorscale: "Viridis", colorbar: { title: { text: "‖Δ‖" } } }],
      { margin: m, title: { text: "mean ‖tuned − base‖ by layer × position (resid_post)", font: { size: 12 } }, xaxis: { title: { text: "position" } }, yaxis: { title: { text: "layer" }, dtick: 1 } }, cfg);
    Plotly.newPlot(layers, [{ type: "bar", x: L, y: d.layers.map((r) => r.rel_norm), marker: { color: L.map((l) => (l === d.best_layer ? "#b42318" : "#2457c5")) } }],
      { margin: m, title: { text: "‖Δ‖ / ‖base‖ per layer (best lens layer red)", font: { size: 12 } }, xaxis: { title: { text: "layer" }, dtick: 1 } }, cfg);
    const top = d.promoted_tokens.slice(0, 20).reverse();
    const ticks = top.map((_, i) => i); // by index: equal token strings must not merge into one bar
    Plotly.newPlot(promoted, [{ type: "bar", orientation: "h", x: top.map((t) => t.logit), y: ticks, marker: { color: "#e07b00" },
      hovertext: top.map((t) => JSON.stringify(t.token)), hoverinfo: "x+text" }],
      { margin: { ...m, l: 110 }, title: { text: `tokens the mean difference promotes (layer ${d.best_layer})`, font: { size: 12 } },
        xaxis: { title: { text: "lens logit" } }, yaxis: { tickvals: ticks, ticktext: top.map((t) => visible(t.token)) } }, cfg);
    Plotly.newPlot(steerPlot, [{ x: d.steer.map((s) => s.coef), y: d.steer.map((s) => s.target_logprob_shift), mode: "lines+markers" }],
      { margin: m, title: { text: `steering the base at layer ${d.steer_layer}: target log-prob shift`, font: { size: 12 } }, xaxis: { title: { text: "coefficient" } }, yaxis: { title: { text: "nats" } } }, cfg);
    if (xc) {
      Plotly.newPlot(document.getElementById("diff-cc-hist"), [{ type: "histogram", x: d.crosscoder.rel_norms.filter((_, i) => d.crosscoder.live[i]), xbins: { start: 0, end: 1, size: 0.025 } }],
        { margin: m, title: { text: "live latents by relative decoder norm r", font: { size: 12 } }, xaxis: { title: { text: "r = ‖d_tuned‖ / (‖d_base‖ + ‖d_tuned‖)" }, range: [0, 1] } }, cfg);
    }
  }

  function crosscoderPanel(x) {
    const c = x.counts;
    return el("div", { class: "panel", id: "diff-cc" },
      el("h2", {}, `Crosscoder: width ${x.width}, k ${x.k}, layer ${x.layer}, ${x.tokens} tokens, FVU ${x.fvu.toFixed(3)}`),
      el("div", {}, `base-only ${c.base_only} · shared ${c.shared} · tuned-only ${c.tuned_only} · other ${c.other} · dead ${c.dead}`),
      el("div", { class: "row" }, el("div", { id: "diff-cc-hist", style: "width:420px;height:260px" }),
        el("table", { class: "top" }, x.tuned_only.map((r) => el("tr", {}, el("td", {}, `latent ${r.latent}`), el("td", {}, `r ${r.rel_norm.toFixed(2)}`),
          el("td", { class: "tok" }, r.top_tokens.slice(0, 6).map(visible).join(" ")), el("td", {}, r.contexts[0] ? visible(r.contexts[0].text) : ""))))));
  }
}

async function listFolders(api) {
  try {
    const found = [];
    const top = await api("/api/runs");
    for (const root of top.entries || []) {
      const inner = await api(`/api/runs?path=${encodeURIComponent(root.path)}`);
      for (const e of inner.entries) if (e.dir && !e.kind) found.push(e.name);
    }
    return found;
  } catch (e) { return []; }
}
