// Grokking: pick a run under the --runs folders (GET /api/grok/runs), analyse it (POST /api/grok/analysis),
// curves with the phases shaded, a checkpoint slider animating the Fourier spectrum, the probe circle,
// neuron surfaces and the logit surface (POST /api/grok/checkpoint); train a new run as a job.

import { DIVERGING, PLOT_CONFIG, jobText, numberField, textField, waitJob } from "/static/labs_common.js";

const PHASES = [["memorisation", "#f6c89f"], ["circuit formation", "#b9d7f0"], ["cleanup", "#c3e6b4"]];
const TRAIN = "#1f77b4", TEST = "#d62728";

function phaseShapes(ph, x0) {
  const bounds = [x0, ph.memorisation_end, ph.circuit_formation_end, ph.cleanup_end];
  return PHASES.map(([, colour], i) => ({ type: "rect", xref: "x", yref: "paper", x0: Math.max(bounds[i], x0),
    x1: Math.max(bounds[i + 1], x0), y0: 0, y1: 1, fillcolor: colour, opacity: 0.45, line: { width: 0 }, layer: "below" }));
}

function marker(epoch) {
  return { type: "line", xref: "x", yref: "paper", x0: Math.max(epoch, 1), x1: Math.max(epoch, 1), y0: 0, y1: 1,
    line: { color: "#111", width: 1.5 } };
}

export async function render(root, ctx) {
  const { api, el, showError, loadPlotly } = ctx;
  const runSel = el("select", { id: "grok-run" });
  const seedSel = el("select", { id: "grok-seed" });
  const analyse = el("button", { id: "grok-analyse" }, "Open");
  const status = el("span", { class: "muted", id: "grok-status" });
  const [outLabel, outIn] = textField(el, "grok-train-out", "New run folder (inside a --runs root)", `grok-${Date.now() % 100000}`);
  const recipe = el("select", { id: "grok-train-recipe" },
    el("option", { value: "small" }, "small (p = 23, ~10 s)"), el("option", { value: "fast" }, "fast (p = 113, minutes)"),
    el("option", { value: "paper" }, "paper (p = 113, 40k epochs)"));
  const [epochsLabel, epochsIn] = numberField(el, "grok-train-epochs", "Epochs (blank: recipe's)", "", { min: 1 });
  const start = el("button", { id: "grok-train-start" }, "Train");
  const cancel = el("button", { id: "grok-train-cancel", class: "secondary", disabled: true }, "Cancel");
  const trainStatus = el("span", { class: "muted", id: "grok-train-progress" });
  const summary = el("div", { class: "legend", id: "grok-summary" });
  const curves = el("div", { id: "grok-curves", style: "width:100%;height:320px" });
  const measures = el("div", { id: "grok-measures", style: "width:100%;height:300px" });
  const slider = el("input", { type: "range", id: "grok-slider", min: 0, max: 0, value: 0, style: "width:min(720px,100%)", disabled: true });
  const play = el("button", { id: "grok-play", class: "secondary", disabled: true }, "▶ Play");
  const epochLabel = el("b", { id: "grok-epoch" }, "");
  const spectrum = el("div", { id: "grok-spectrum", style: "width:560px;height:300px" });
  const circle = el("div", { id: "grok-circle", style: "width:380px;height:360px" });
  const neurons = el("div", { id: "grok-neurons", class: "row" });
  const logits = el("div", { id: "grok-logits", style: "width:380px;height:360px" });
  root.append(
    el("h1", {}, "Grokking"),
    el("div", { class: "controls" }, el("label", {}, "Run", runSel), el("label", {}, "Seed", seedSel), analyse, status),
    el("details", { class: "panel", id: "grok-train" }, el("summary", {}, "Train a new run"),
      el("div", { class: "controls" }, outLabel, el("label", {}, "Recipe", recipe), epochsLabel, start, cancel, trainStatus)),
    summary, curves, measures,
    el("h2", {}, "The mechanism at one checkpoint"),
    el("div", { class: "controls" }, slider, play, epochLabel),
    el("div", { class: "row" }, spectrum, circle, logits),
    neurons,
  );

  let runs = [], analysis = null, job = null, playing = false, seq = 0;
  const baseShapes = new Map(); // the phase shading of each curve plot (the epoch marker is added on top)
  const Plotly = await loadPlotly();

  async function listRuns(select) {
    const data = await api("/api/grok/runs");
    runs = data.runs;
    runSel.replaceChildren(...(runs.length ? runs.map((r) => el("option", { value: r.path },
      `${r.name} (${r.recipe || "?"}, p=${r.p}, ${r.step ?? "?"}/${r.epochs} epochs${r.analysed.length ? ", analysed" : ""})`))
      : [el("option", { value: "" }, data.roots.length ? "no runs yet: train one below" : "no --runs folder: start with --runs DIR")]));
    if (select) runSel.value = select;
    fillSeeds();
  }

  function fillSeeds() {
    const r = runs.find((x) => x.path === runSel.value);
    seedSel.replaceChildren(...((r && r.seeds) || [0]).map((s) => el("option", { value: s }, String(s))));
  }

  async function open() {
    if (!runSel.value) return;
    showError(root, null);
    status.textContent = "opening…";
    analyse.disabled = true;
    try {
      const res = await api("/api/grok/analysis", { run: runSel.value, seed: Number(seedSel.value) });
      analysis = res.analysis || await waitJob(api, res.job, (s) => { status.textContent = jobText(s); });
      status.textContent = "";
      await drawRun();
    } catch (e) {
      status.textContent = "";
      showError(root, e);
    } finally {
      analyse.disabled = false;
    }
  }

  async function drawRun() {
    const a = analysis, s = a.summary, ph = s.phases, c = a.curves;
    summary.textContent = `${a.config.operation} mod ${s.p}, ${a.config.recipe} recipe, seed ${a.seed}: train 99% at epoch ` +
      `${s.epoch_train_acc_99 ?? "–"}, test 99% at epoch ${s.epoch_test_acc_99 ?? "–"}; key frequencies ${s.key_frequencies.join(", ") || "none"}; ` +
      `phases: memorisation to ${ph.memorisation_end}, circuit formation to ${ph.circuit_formation_end}, cleanup to ${ph.cleanup_end}.`;
    const shade = (x0) => [...phaseShapes(ph, x0), ...phaseShapes(ph, x0).map((r) => ({ ...r, xref: "x2" }))];
    baseShapes.set(curves, shade(1)).set(measures, shade(0));
    const pos = (xs, ys) => xs.map((x, i) => [x, ys[i]]).filter(([x, y]) => x >= 1 && y !== null);
    const line = (pairs, name, color, extra = {}) => ({ x: pairs.map((p) => p[0]), y: pairs.map((p) => p[1]), name,
      mode: "lines", line: { color, width: 1.5 }, ...extra });
    const acc = (v) => v === null ? null : 100 * v;
    await Plotly.react(curves, [
      line(pos(c.epoch, c.train_loss), "train loss", TRAIN),
      line(pos(c.eval_epoch, c.test_loss), "test loss", TEST),
      line(pos(c.epoch, c.train_acc.map(acc)), "train acc %", TRAIN, { xaxis: "x2", yaxis: "y2", line: { color: TRAIN, dash: "dot" } }),
      line(pos(c.eval_epoch, c.test_acc.map(acc)), "test acc %", TEST, { xaxis: "x2", yaxis: "y2", line: { color: TEST, dash: "dot" } }),
    ], {
      grid: { rows: 1, columns: 2, pattern: "independent" }, margin: { l: 50, r: 10, t: 30, b: 40 },
      title: { text: "loss and accuracy (phases shaded: memorisation, circuit formation, cleanup)", font: { size: 13 } },
      xaxis: { type: "log", title: { text: "epoch" } }, yaxis: { type: "log", title: { text: "loss" } },
      xaxis2: { type: "log", title: { text: "epoch" } }, yaxis2: { range: [-2, 102], title: { text: "accuracy %" } },
      shapes: baseShapes.get(curves),
      legend: { orientation: "h", y: -0.25 },
    }, PLOT_CONFIG);
    const m = a.measures;
    const traces = [["train_loss", "train loss", TRAIN], ["test_loss", "test loss", TEST],
      ["restricted_loss", "restricted loss", "#2ca02c"], ["excluded_loss_all", "excluded loss", "#9467bd"]]
      .map(([k, name, color]) => line(pos(m.epoch, m[k]), name, color));
    traces.push(line(pos(m.epoch, m.gini_W_L), "Gini of W_L", "#e377c2", { xaxis: "x2", yaxis: "y2" }),
      line(pos(m.epoch, m.gini_W_E), "Gini of W_E", "#8c564b", { xaxis: "x2", yaxis: "y2" }),
      line(pos(m.epoch, m.fve_fraction), "neurons FVE > 0.85", "#17becf", { xaxis: "x2", yaxis: "y2" }));
    await Plotly.react(measures, traces, {
      grid: { rows: 1, columns: 2, pattern: "independent" }, margin: { l: 50, r: 10, t: 30, b: 40 },
      title: { text: "progress measures at the checkpoints", font: { size: 13 } },
      xaxis: { title: { text: "epoch" } }, yaxis: { type: "log", title: { text: "loss" } },
      xaxis2: { title: { text: "epoch" } }, yaxis2: { range: [0, 1.02] },
      shapes: baseShapes.get(measures),
      legend: { orientation: "h", y: -0.25 },
    }, PLOT_CONFIG);
    slider.max = a.epochs.length - 1;
    slider.disabled = false;
    play.disabled = false;
    // start at the end of cleanup (the circle is there), or the last checkpoint
    const at = a.epochs.findIndex((e) => e >= ph.cleanup_end);
    slider.value = at >= 0 ? at : a.epochs.length - 1;
    await showCheckpoint();
  }

  async function showCheckpoint() {
    const epoch = analysis.epochs[Number(slider.value)];
    const mine = ++seq;
    epochLabel.textContent = `epoch ${epoch} (checkpoint ${Number(slider.value) + 1} of ${analysis.epochs.length})`;
    let v;
    try {
      v = await api("/api/grok/checkpoint", { run: analysis.dir, seed: analysis.seed, epoch });
    } catch (e) { showError(root, e); return; }
    if (mine !== seq) return; // a later move of the slider wins
    const key = new Set(v.key_frequencies);
    const freqs = v.W_E_frequency_norms.map((_, i) => i + 1);
    await Plotly.react(spectrum, [
      { type: "bar", x: freqs, y: v.W_E_frequency_norms, name: "W_E", marker: { color: freqs.map((k) => key.has(k) ? "#d62728" : "#9fb3c8") } },
      { type: "bar", x: freqs, y: v.W_L_frequency_norms, name: "W_L", xaxis: "x2", yaxis: "y2",
        marker: { color: freqs.map((k) => key.has(k) ? "#d62728" : "#c9b3d8") } },
    ], { grid: { rows: 2, columns: 1, pattern: "independent" }, margin: { l: 45, r: 10, t: 30, b: 30 }, showlegend: false,
      title: { text: `Fourier spectrum at epoch ${epoch} (red: final key frequencies; now ${v.key_frequencies_now.join(", ") || "none"})`, font: { size: 12 } },
      yaxis: { title: { text: "W_E" } }, yaxis2: { title: { text: "W_L" } }, xaxis2: { title: { text: "frequency k" } } }, PLOT_CONFIG);
    const p = v.p, k = v.probe_frequency;
    const order = [...Array(p).keys()].sort((a, b) => ((k * a) % p) - ((k * b) % p));
    const ring = [...order, order[0]];
    const t = [...Array(101).keys()].map((i) => (2 * Math.PI * i) / 100);
    await Plotly.react(circle, [
      { x: t.map(Math.cos), y: t.map(Math.sin), mode: "lines", line: { color: "#ccc", dash: "dash" }, hoverinfo: "skip" },
      { x: ring.map((i) => v.probe_circle[i][0]), y: ring.map((i) => v.probe_circle[i][1]), mode: "lines", line: { color: "#999", width: 0.8 }, hoverinfo: "skip" },
      { x: v.probe_circle.map((c) => c[0]), y: v.probe_circle.map((c) => c[1]), mode: "markers", text: [...Array(p).keys()].map(String),
        marker: { color: [...Array(p).keys()], colorscale: "Phase", size: 7, line: { width: 0.5, color: "#333" } },
        hovertemplate: "token %{text}<extra></extra>" },
    ], { showlegend: false, margin: { l: 40, r: 10, t: 30, b: 35 },
      title: { text: `embeddings through the final probe (k = ${k})`, font: { size: 12 } },
      xaxis: { range: [-1.7, 1.7], title: { text: "cos probe" } }, yaxis: { range: [-1.7, 1.7], scaleanchor: "x", title: { text: "sin probe" } } }, PLOT_CONFIG);
    await Plotly.react(logits, [{ type: "heatmap", z: v.logit_surface, colorscale: DIVERGING, zmid: 0,
      hovertemplate: "x %{y}, y %{x}: logit %{z:.2f}<extra></extra>", colorbar: { thickness: 8 } }],
    { margin: { l: 40, r: 10, t: 30, b: 35 }, title: { text: `logit of answer ${v.logit_token} over (x, y)`, font: { size: 12 } },
      xaxis: { title: { text: "y" } }, yaxis: { title: { text: "x" }, scaleanchor: "x" } }, PLOT_CONFIG);
    while (neurons.children.length > v.neurons.length) neurons.lastChild.remove();
    while (neurons.children.length < v.neurons.length) neurons.append(el("div", { class: "grok-neuron", style: "width:340px;height:320px" }));
    await Promise.all(v.neurons.map((n, i) => Plotly.react(neurons.children[i], [{ type: "heatmap", z: n.surface, colorscale: "Viridis",
      hovertemplate: "x %{y}, y %{x}: %{z:.2f}<extra></extra>", colorbar: { thickness: 8 } }],
    { margin: { l: 40, r: 10, t: 30, b: 35 }, title: { text: `neuron ${n.neuron} (final frequency ${n.frequency}; now ${n.frequency_now}, FVE ${n.fve_now.toFixed(2)})`, font: { size: 11 } },
      xaxis: { title: { text: "y" } }, yaxis: { title: { text: "x" }, scaleanchor: "x" } }, PLOT_CONFIG)));
    for (const [div, shapes] of baseShapes) {
      await Plotly.relayout(div, { shapes: [...shapes, ...["x", "x2"].map((x) => ({ ...marker(epoch), xref: x }))] });
    }
  }

  async function train() {
    showError(root, null);
    start.disabled = true;
    cancel.disabled = false;
    const body = { out: outIn.value, recipe: recipe.value };
    if (epochsIn.value) body.epochs = Number(epochsIn.value);
    try {
      job = await api("/api/grok/train", body);
      await waitJob(api, job, (s) => { trainStatus.textContent = jobText(s); });
      trainStatus.textContent = "done: opening it";
      await listRuns(runs.find((r) => r.name === outIn.value)?.path || null);
      const made = runs.find((r) => r.path.endsWith("/" + outIn.value) || r.name === outIn.value);
      if (made) { runSel.value = made.path; fillSeeds(); await open(); }
      outIn.value = `grok-${Date.now() % 100000}`;
    } catch (e) {
      trainStatus.textContent = e.message === "cancelled" ? "cancelled (resume it by training into the same folder)" : "";
      if (e.message !== "cancelled") showError(root, e);
    } finally {
      start.disabled = false;
      cancel.disabled = true;
      job = null;
    }
  }

  async function togglePlay() {
    playing = !playing;
    play.textContent = playing ? "❚❚ Pause" : "▶ Play";
    if (playing && Number(slider.value) >= Number(slider.max)) slider.value = 0;
    while (playing && Number(slider.value) < Number(slider.max)) {
      slider.value = Number(slider.value) + 1;
      await showCheckpoint();
      await new Promise((r) => setTimeout(r, 120));
    }
    playing = false;
    play.textContent = "▶ Play";
  }

  runSel.addEventListener("change", fillSeeds);
  analyse.addEventListener("click", open);
  slider.addEventListener("input", showCheckpoint);
  play.addEventListener("click", togglePlay);
  start.addEventListener("click", train);
  cancel.addEventListener("click", () => job && api(`/api/jobs/${encodeURIComponent(job.id)}`, undefined, "DELETE").catch((e) => showError(root, e)));
  try {
    await listRuns();
    if (runs.length) await open();
  } catch (e) { showError(root, e); }
}
