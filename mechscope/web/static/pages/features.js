// Neurons & features: one SAE latent (GET /api/features/{latent}, after the POST /api/features/scan job)
// or one MLP neuron (GET /api/neurons/{unit}, after POST /api/neurons/scan): density histogram, top
// contexts with per-token highlighting, quantile bands, top ± logits, similar latents, and a text box
// (POST /api/activations). Open directly with #/features?sae=DIR&latent=N or #/features?hook=H&unit=N.

import { highlight, jobRunner } from "./job_poll.js";

export async function render(root, ctx) {
  const { api, el, visible, showError, loadPlotly, info } = ctx;
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const { hooks } = await api("/api/hooks");
  const neuronHooks = hooks.filter((h) => h.select.includes("neurons") || h.select.includes("dims"));
  const saes = await listSaes(api);

  const kind = el("select", { id: "feat-kind" }, el("option", { value: "latent" }, "SAE latent"), el("option", { value: "neuron" }, "neuron / unit"));
  const sae = el("input", { id: "feat-sae", list: "feat-sae-list", size: 28, placeholder: "an SAE folder under --runs", value: params.get("sae") || saes[0] || "" });
  const saeList = el("datalist", { id: "feat-sae-list" }, saes.map((s) => el("option", { value: s })));
  const latent = el("input", { id: "feat-latent", class: "small", type: "number", min: 0, value: params.get("latent") || params.get("unit") || 0 });
  const hookSel = el("select", { id: "feat-hook" }, neuronHooks.map((h) => el("option", { value: h.name }, `${h.name} [${h.sizes.at(-1)}]`)));
  const mlp = neuronHooks.find((h) => h.name.endsWith("mlp.hook_post") && h.layer === Math.floor((info.config?.n_layers || 2) / 2));
  hookSel.value = params.get("hook") || (mlp ? mlp.name : neuronHooks[0]?.name);
  const tokens = el("input", { id: "feat-tokens", class: "small", type: "number", min: 2, value: params.get("tokens") || "" , placeholder: "default" });
  const seqLen = el("input", { id: "feat-seq-len", class: "small", type: "number", min: 2, value: params.get("seq_len") || 128 });
  const corpus = el("input", { id: "feat-corpus", size: 22, value: params.get("corpus") || "builtin", title: "builtin, or files under --runs (comma-separated)" });
  const open = el("button", { id: "feat-open" }, "Open");
  const cancel = el("button", { class: "secondary", id: "feat-cancel" }, "Cancel scan");
  const status = el("span", { class: "muted", id: "feat-status" });
  const out = el("div", { id: "feat-out" });
  const saeBox = el("span", { style: "display:flex;gap:10px" }, el("label", {}, "SAE folder", sae, saeList));
  const hookBox = el("label", { style: "display:none" }, "hook", hookSel);
  const idxLabel = el("span", {}, "latent");
  root.append(
    el("h1", {}, "Neurons & features"),
    el("div", { class: "controls" }, el("label", {}, "what", kind), saeBox, hookBox, el("label", {}, idxLabel, latent),
      el("label", {}, "corpus tokens", tokens), el("label", {}, "seq len", seqLen), el("label", {}, "corpus", corpus), open, cancel, status),
    el("div", { class: "legend" }, "The first look at an SAE or hook runs one pass over the corpus for every latent or unit at once (a background job, cached on disk); then any latent opens instantly."),
    out,
  );
  if (params.get("hook") || params.get("unit")) kind.value = "neuron";
  const sync = () => {
    const n = kind.value === "neuron";
    saeBox.style.display = n ? "none" : "flex"; hookBox.style.display = n ? "" : "none";
    idxLabel.textContent = n ? "unit" : "latent";
  };
  kind.addEventListener("change", sync); sync();
  const runJob = jobRunner(ctx, status, cancel);

  function source() {
    const s = { seq_len: Number(seqLen.value) || 128, corpus: corpus.value.split(",").map((x) => x.trim()).filter(Boolean) };
    if (tokens.value.trim()) s.tokens = Number(tokens.value);
    return s;
  }
  function query(extra) {
    const s = source();
    const q = new URLSearchParams({ seq_len: s.seq_len, corpus: s.corpus.join(","), ...extra });
    if (s.tokens) q.set("tokens", s.tokens);
    return q.toString();
  }

  async function openIt() {
    showError(root, null);
    open.disabled = true;
    try {
      const n = kind.value === "neuron";
      const idx = Number(latent.value);
      const url = n ? `/api/neurons/${idx}?${query({ hook: hookSel.value })}` : `/api/features/${idx}?${query({ sae: sae.value })}`;
      let data;
      try { data = await api(url); } catch (e) {
        if (!/not been scanned/.test(e.message)) throw e;
        await runJob(n ? "/api/neurons/scan" : "/api/features/scan", n ? { hook: hookSel.value, ...source() } : { sae: sae.value, ...source() });
        data = await api(url);
      }
      status.textContent = `${data.cached ? "cached, " : ""}${data.seconds} s`;
      if (n) drawNeuron(data); else await drawLatent(data);
    } catch (e) { showError(root, e); }
    finally { open.disabled = false; }
  }
  open.addEventListener("click", openIt);

  // bos: the contexts start with BOS (neurons' top examples), shown unshaded; each context is shaded on
  // its own largest |activation| past BOS.
  function contexts(title, list, id, valueKey, actsKey, bos = false) {
    const scale = (acts) => Math.max(1e-9, ...acts.slice(bos ? 1 : 0).map(Math.abs));
    return el("div", { class: "panel", id },
      el("h2", {}, title),
      list.length ? list.map((ex) => el("div", { style: "margin:4px 0" },
        el("span", { class: "muted", style: "font-size:11px;margin-right:6px" }, (ex[valueKey]).toFixed(3)),
        highlight(el, visible, ex.tokens, ex[actsKey], bos ? scale(ex[actsKey]) : Math.abs(ex[valueKey]), ex.position, bos)))
        : el("span", { class: "muted" }, "none (the latent never fired)"));
  }

  function textBox(body) {
    const text = el("textarea", { class: "prompt", id: "feat-text" }, "The capital of France is Paris, and the right operand comes first.");
    const go = el("button", { id: "feat-text-run" }, "Show activations");
    const res = el("div", { id: "feat-text-out" });
    go.addEventListener("click", async () => {
      showError(root, null);
      try {
        const r = await api("/api/activations", { text: text.value, ...body });
        res.replaceChildren(el("div", { class: "legend" }, `max ${r.max.toFixed(4)} at position ${r.max_position} (${r.positions})`),
          highlight(el, visible, r.tokens, r.activations, Math.max(...r.activations.slice(1), 0), r.max_position, true));
      } catch (e) { showError(root, e); }
    });
    return el("div", { class: "panel" }, el("h2", {}, "Your text"), el("div", { class: "controls" }, text, go), res);
  }

  async function drawLatent(d) {
    const Plotly = await loadPlotly();
    const stats = el("div", { class: "panel", id: "feat-stats" },
      el("h2", {}, `Latent ${d.latent} of ${d.width} at ${d.hook}`),
      el("div", {}, `density ${(100 * d.density).toFixed(3)}% (${d.fires} of ${d.tokens_scanned} tokens, ${d.positions}) · mean ${d.mean_activation.toFixed(3)} · max ${d.max_activation.toFixed(3)}`),
      el("div", {}, el("a", { href: `#/steer?sae=${encodeURIComponent(sae.value)}&latent=${d.latent}`, id: "feat-steer-link" }, "Steer with this latent →")));
    const hist = el("div", { id: "feat-hist", style: "width:420px;height:240px" });
    const logits = el("div", { class: "panel", id: "feat-logits" }, el("h2", {}, "Top ± logits (W_dec · W_U)"),
      d.logits_note ? el("div", { class: "muted" }, d.logits_note) : el("div", { class: "row" },
        logitTable(d.top_logits, "promoted"), logitTable(d.bottom_logits, "suppressed")));
    const similar = el("div", { class: "panel", id: "feat-similar" }, el("h2", {}, "Similar latents (decoder cosine)"),
      (d.similar || []).map((s) => el("div", {}, el("a", { href: "#", "data-latent": s.latent, onclick: (ev) => { ev.preventDefault(); latent.value = s.latent; openIt(); } }, `latent ${s.latent}`), ` ${s.cosine.toFixed(3)}`)));
    const bands = el("div", { class: "panel", id: "feat-bands" }, el("h2", {}, "Activation quantile bands (a uniform sample of firing contexts)"),
      d.quantiles.map((b) => el("div", {}, el("div", { class: "legend" }, `band ${b.band}: max activation ${b.range[1].toFixed(3)} … ${b.range[0].toFixed(3)}`),
        b.examples.slice(0, 3).map((ex) => highlight(el, visible, ex.tokens, ex.acts, d.max_activation, ex.position)))));
    out.replaceChildren(
      el("div", { class: "row" }, el("div", {}, stats, el("div", { class: "panel" }, el("h2", {}, "Activation density (log10 activation, firing tokens)"), hist)), logits, similar),
      el("div", { class: "row" }, el("div", { class: "half" }, contexts("Top activating contexts", d.top_examples, "feat-top", "max", "acts")), el("div", { class: "half" }, bands, textBox({ sae: sae.value, latent: d.latent }))),
    );
    const e = d.histogram.log10_edges;
    const nz = d.histogram.counts.map((c, i) => (c > 0 ? i : -1)).filter((i) => i >= 0);
    const range = nz.length ? [e[nz[0]] - 0.5, e[nz.at(-1) + 1] + 0.5] : [e[0], e.at(-1)];
    Plotly.newPlot(hist, [{ type: "bar", x: e.slice(0, -1).map((v, i) => (v + e[i + 1]) / 2), y: d.histogram.counts, marker: { color: "#e07b00" } }],
      { margin: { l: 40, r: 10, t: 10, b: 40 }, xaxis: { title: { text: "log10 activation" }, range }, yaxis: { title: { text: "tokens" } }, bargap: 0 },
      { displayModeBar: false, responsive: true });
  }

  function logitTable(rows, what) {
    return el("table", { class: "top" }, el("tr", {}, el("td", { class: "muted", colspan: 2 }, what)),
      rows.map((r) => el("tr", {}, el("td", { class: "tok" }, visible(r.token)), el("td", {}, (r.logit >= 0 ? "+" : "") + r.logit.toFixed(3)))));
  }

  function drawNeuron(d) {
    out.replaceChildren(
      el("div", { class: "panel", id: "feat-stats" }, el("h2", {}, `Unit ${d.unit} of ${d.n_units} at ${d.hook}`),
        el("div", {}, `${d.unit_kind} · ${d.tokens} corpus tokens scanned · top and bottom ${d.k} contexts (BOS excluded from the ranking)`)),
      el("div", { class: "row" },
        el("div", { class: "half" }, contexts("Top activating contexts", d.top, "feat-top", "activation", "activations", true)),
        el("div", { class: "half" }, contexts("Most negative contexts", d.bottom, "feat-bottom", "activation", "activations", true),
          textBox({ hook: d.hook, unit: d.unit }))));
  }

  if (params.get("sae") || params.get("hook")) openIt();
}

async function listSaes(api) {
  try {
    const found = [];
    const top = await api("/api/runs");
    for (const root of top.entries || []) {
      const inner = await api(`/api/runs?path=${encodeURIComponent(root.path)}`);
      for (const e of inner.entries) if (e.kind === "sae") found.push(e.name);
    }
    return found;
  } catch (e) { return []; }
}
