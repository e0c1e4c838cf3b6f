// Circuits: activation patching (POST /api/circuits/patch, a job) and causal tracing (POST /api/circuits/trace,
// a job) as layer × position heatmaps; click a cell for the top-10 under that single patch
// (POST /api/circuits/patch-cell, /trace-cell); direct logit attribution bars (POST /api/circuits/dla).

import { DIVERGING, PLOT_CONFIG, num, jobText, numberField, textField, waitJob } from "/static/labs_common.js";

const KIND_TITLE = { resid_pre: "residual stream (resid_pre)", attn_out: "attention output", mlp_out: "MLP output",
  resid: "block output (resid_post)", mlp: "MLP window", attn: "attention window" };

export async function render(root, ctx) {
  const { api, el, visible, showError, loadPlotly, topTable } = ctx;
  const Plotly = await loadPlotly();

  // ---- patching
  const [cleanL, clean] = textField(el, "circ-clean", "Clean prompt", "The Eiffel Tower is in the city of", { size: 40 });
  const [corruptL, corrupt] = textField(el, "circ-corrupt", "Corrupt prompt", "The Colosseum is in the city of", { size: 40 });
  const [answerL, answer] = textField(el, "circ-answer", "Answer", " Paris", { size: 10 });
  const [wrongL, wrong] = textField(el, "circ-wrong", "Wrong (optional)", " Rome", { size: 10 });
  const what = Object.fromEntries(["resid", "attn", "mlp", "heads"].map((w) => [w, el("input", { type: "checkbox", id: `circ-what-${w}`, checked: w !== "heads" })]));
  const align = el("select", { id: "circ-align" }, el("option", { value: "" }, "same length"), el("option", { value: "left" }, "left"), el("option", { value: "right" }, "right"));
  const patchGo = el("button", { id: "circ-patch-run" }, "Patch");
  const patchStatus = el("span", { class: "muted", id: "circ-patch-status" });
  const patchMaps = el("div", { id: "circ-patch-maps", class: "row" });

  // ---- tracing
  const factSel = el("select", { id: "circ-fact" }, el("option", { value: "" }, "— a built-in fact —"));
  const [promptL, prompt] = textField(el, "circ-prompt", "Prompt", "Michael Jordan plays the sport of", { size: 40 });
  const [subjectL, subject] = textField(el, "circ-subject", "Subject", "Michael Jordan", { size: 18 });
  const [tAnswerL, tAnswer] = textField(el, "circ-trace-answer", "Answer", " basketball", { size: 12 });
  const [samplesL, samples] = numberField(el, "circ-samples", "Noise samples", 3, { min: 1, max: 50 });
  const [windowL, windowIn] = numberField(el, "circ-window", "Window", 10, { min: 1 });
  const traceGo = el("button", { id: "circ-trace-run" }, "Trace");
  const traceStatus = el("span", { class: "muted", id: "circ-trace-status" });
  const traceMaps = el("div", { id: "circ-trace-maps", class: "row" });

  // ---- the clicked cell, DLA
  const cell = el("div", { class: "panel", id: "circ-cell" }, el("span", { class: "muted" }, "Click a heatmap cell: the top-10 next tokens under that one patch."));
  const [dPromptL, dPrompt] = textField(el, "circ-dla-prompt", "Prompt", "The capital of France is", { size: 40 });
  const [dAnswerL, dAnswer] = textField(el, "circ-dla-answer", "Answer", " Paris", { size: 10 });
  const [dWrongL, dWrong] = textField(el, "circ-dla-wrong", "Wrong (optional)", " Rome", { size: 10 });
  const dlaGo = el("button", { id: "circ-dla-run" }, "Attribute");
  const dlaStatus = el("span", { class: "muted", id: "circ-dla-status" });
  const dlaBars = el("div", { id: "circ-dla-bars", style: "width:100%;height:320px" });
  const dlaHeads = el("div", { id: "circ-dla-heads", style: "width:520px;height:360px" });

  root.append(
    el("h1", {}, "Circuits"),
    el("h2", {}, "Activation patching: put one clean activation into the corrupt run"),
    el("div", { class: "controls" }, cleanL, corruptL, answerL, wrongL,
      el("label", {}, "Components", el("span", {}, ...Object.entries(what).flatMap(([w, box]) => [box, ` ${w} `]))),
      el("label", {}, "Align", align), patchGo, patchStatus),
    el("div", { class: "legend" }, "Cell = normalised logit difference after the patch (0 = corrupt run, 1 = clean run)."),
    el("div", { class: "row" }, patchMaps),
    el("h2", {}, "Causal tracing of a fact: noise the subject, restore one state"),
    el("div", { class: "controls" }, el("label", {}, "Fact", factSel), promptL, subjectL, tAnswerL, samplesL, windowL, traceGo, traceStatus),
    el("div", { class: "legend" }, "Cell = indirect effect: P(answer | state restored) − P(answer | subject noised), mean over the noise samples."),
    el("div", { class: "row" }, traceMaps),
    el("h2", {}, "The clicked cell"),
    cell,
    el("h2", {}, "Direct logit attribution"),
    el("div", { class: "controls" }, dPromptL, dAnswerL, dWrongL, dlaGo, dlaStatus),
    el("div", { class: "row" }, dlaBars, dlaHeads),
  );

  let patchReq = null, traceReq = null;

  function heatmap(div, z, tokens, title, zmid, onClick, ylabels) {
    const x = tokens.map((t, i) => `${i}:${visible(t)}`);
    Plotly.react(div, [{ type: "heatmap", z, x, y: ylabels || z.map((_, l) => `L${l}`), colorscale: DIVERGING,
      zmid, hoverongaps: false, hovertemplate: "%{y} @ %{x}: %{z:.3f}<extra></extra>", colorbar: { thickness: 8 } }],
    { title: { text: title, font: { size: 12 } }, margin: { l: 45, r: 10, t: 30, b: 80 }, xaxis: { tickangle: -45, type: "category" },
      yaxis: { type: "category" } }, PLOT_CONFIG);
    div.removeAllListeners && div.removeAllListeners("plotly_click");
    div.on("plotly_click", (ev) => {
      const pt = ev.points[0];
      const [layer, index] = Array.isArray(pt.pointIndex) ? pt.pointIndex : [pt.pointNumber[0], pt.pointNumber[1]];
      onClick(layer, index);
    });
  }

  function mapDiv(id, n) {
    return el("div", { id, class: "circ-map", style: `width:${Math.min(720, 160 + 46 * n)}px;height:${Math.max(260, 30 + 16 * 20)}px` });
  }

  async function showCell(path, body, label) {
    cell.replaceChildren(el("span", { class: "muted" }, `running ${label}…`));
    try {
      const r = await api(path, body);
      const refs = r.method === "patch" ? [["clean", r.clean_top], ["corrupt", r.corrupt_top]] : [["clean", r.clean_top], ["subject noised", r.corrupted_top]];
      const value = r.method === "patch" ? `normalised logit difference ${num(r.value)}` :
        `P(${visible(r.answer)}) ${num(r.answer_prob)}, indirect effect ${num(r.value)}`;
      cell.replaceChildren(el("b", { id: "circ-cell-title" }, `${label}: ${value}`),
        el("div", { class: "row" },
          el("div", { id: "circ-cell-top" }, el("div", { class: "muted" }, "under this patch"), topTable(r.top)),
          ...refs.map(([name, top]) => el("div", {}, el("div", { class: "muted" }, name), topTable(top)))));
    } catch (e) {
      cell.replaceChildren();
      showError(root, e);
    }
  }

  async function runPatch() {
    showError(root, null);
    const kinds = Object.entries(what).filter(([, b]) => b.checked).map(([w]) => w);
    patchReq = { clean: clean.value, corrupt: corrupt.value, answer: answer.value, what: kinds };
    if (wrong.value) patchReq.wrong = wrong.value;
    if (align.value) patchReq.align = align.value;
    patchGo.disabled = true;
    try {
      const job = await api("/api/circuits/patch", patchReq);
      const r = await waitJob(api, job, (s) => { patchStatus.textContent = jobText(s); });
      patchStatus.textContent = `${r.seconds.toFixed(1)} s, ${r.forwards} forwards; clean ${r.clean_logit_diff.toFixed(2)}, corrupt ${r.corrupt_logit_diff.toFixed(2)}`;
      const req = patchReq;
      patchMaps.replaceChildren();
      for (const [kind, z] of Object.entries(r.effects)) {
        const div = mapDiv(`circ-patch-${kind}`, r.tokens.length);
        patchMaps.append(div);
        heatmap(div, z, r.tokens, KIND_TITLE[kind], 0, (layer, index) =>
          showCell("/api/circuits/patch-cell", { ...req, kind, layer, index }, `${kind} L${layer} @ ${index} (${visible(r.tokens[index])})`));
      }
      if (r.heads) {
        const div = mapDiv("circ-patch-heads", r.heads[0].length);
        patchMaps.append(div);
        heatmap(div, r.heads, r.heads[0].map((_, h) => `H${h}`), "heads (z at every position)", 0,
          (layer, index) => showCell("/api/circuits/patch-cell", { ...req, kind: "heads", layer, index }, `head L${layer}H${index}`));
      }
    } catch (e) {
      patchStatus.textContent = "";
      showError(root, e);
    } finally { patchGo.disabled = false; }
  }

  async function runTrace() {
    showError(root, null);
    traceReq = { prompt: prompt.value, subject: subject.value, answer: tAnswer.value, samples: Number(samples.value), window: Number(windowIn.value) };
    traceGo.disabled = true;
    try {
      const job = await api("/api/circuits/trace", traceReq);
      const r = await waitJob(api, job, (s) => { traceStatus.textContent = jobText(s); });
      traceStatus.textContent = `${r.seconds.toFixed(1)} s; P(answer) clean ${num(r.clean_prob)}, subject noised ${num(r.corrupted_prob)}`;
      const req = traceReq;
      const toks = r.tokens.map((t, i) => (r.subject_positions.includes(i) ? t + "*" : t));
      traceMaps.replaceChildren();
      for (const [kind, z] of Object.entries(r.effects)) {
        const div = mapDiv(`circ-trace-${kind}`, r.tokens.length);
        traceMaps.append(div);
        heatmap(div, z, toks, KIND_TITLE[kind] + " (* = subject)", 0, (layer, position) =>
          showCell("/api/circuits/trace-cell", { ...req, kind, layer, position }, `${kind} L${layer} @ ${position} (${visible(r.tokens[position])})`));
      }
    } catch (e) {
      traceStatus.textContent = "";
      showError(root, e);
    } finally { traceGo.disabled = false; }
  }

  async function runDla() {
    showError(root, null);
    const body = { prompt: dPrompt.value, answer: dAnswer.value };
    if (dWrong.value) body.wrong = dWrong.value;
    dlaGo.disabled = true;
    try {
      const r = await api("/api/circuits/dla", body);
      dlaStatus.textContent = `${r.metric} = ${r.logit_diff.toFixed(3)}; components sum ${r.components_sum.toFixed(3)} (${r.seconds.toFixed(2)} s)`;
      const comps = r.components;
      await Plotly.react(dlaBars, [{ type: "bar", x: comps.map((c) => c.label), y: comps.map((c) => c.effect),
        marker: { color: comps.map((c) => (c.effect >= 0 ? "#b2182b" : "#2166ac")) }, hovertemplate: "%{x}: %{y:.3f}<extra></extra>" }],
      { title: { text: `direct effect on ${r.metric} per component`, font: { size: 12 } }, margin: { l: 45, r: 10, t: 30, b: 70 },
        xaxis: { tickangle: -60, type: "category" } }, PLOT_CONFIG);
      await Plotly.react(dlaHeads, [{ type: "heatmap", z: r.heads, x: r.heads[0].map((_, h) => `H${h}`), y: r.heads.map((_, l) => `L${l}`),
        colorscale: DIVERGING, zmid: 0, hovertemplate: "%{y}%{x}: %{z:.3f}<extra></extra>", colorbar: { thickness: 8 } }],
      { title: { text: "per head", font: { size: 12 } }, margin: { l: 45, r: 10, t: 30, b: 30 }, yaxis: { type: "category" } }, PLOT_CONFIG);
    } catch (e) {
      dlaStatus.textContent = "";
      showError(root, e);
    } finally { dlaGo.disabled = false; }
  }

  patchGo.addEventListener("click", runPatch);
  traceGo.addEventListener("click", runTrace);
  dlaGo.addEventListener("click", runDla);
  factSel.addEventListener("change", () => {
    const f = facts[Number(factSel.value)];
    if (f) { prompt.value = f.prompt; subject.value = f.subject; tAnswer.value = f.answer; }
  });
  let facts = [];
  try {
    facts = (await api("/api/circuits/facts")).facts;
    factSel.append(...facts.map((f, i) => el("option", { value: i }, `${f.prompt} →${f.answer}`)));
  } catch (e) { showError(root, e); }
}
