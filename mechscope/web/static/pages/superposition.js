// Superposition: toy models (POST /api/superposition/toy, a job) with their geometry — feature directions
// for m = 2, WᵀW heatmaps, norms and D_i —, near-orthogonal vectors (POST /api/superposition/orthogonal,
// a job: the numbers and the angle histogram) and the AND-neuron fact memory (POST /api/superposition/memory).

import { DIVERGING, PLOT_CONFIG, jobText, numberField, waitJob } from "/static/labs_common.js";

const SETS = { random: "#888", "3b1b": "#2a788e", maxcos: "#d62728" };

export async function render(root, ctx) {
  const { api, el, showError, loadPlotly } = ctx;
  const Plotly = await loadPlotly();
  const fields = {};
  const add = (key, label, value, attrs) => { const [l, i] = numberField(el, `sup-${key}`, label, value, attrs); fields[key] = i; return l; };
  const toyControls = [add("n", "Features n", 5, { min: 1, max: 200 }), add("m", "Dimensions m", 2, { min: 1, max: 100 }),
    add("density", "Density", 0.05, { step: 0.01, min: 0.001, max: 1 }), add("importance", "Importance decay", 0.9, { step: 0.05, min: 0.01, max: 1 }),
    add("instances", "Instances", 4, { min: 1, max: 32 }), add("steps", "Steps", 2000, { min: 1, max: 20000 })];
  const toyGo = el("button", { id: "sup-run" }, "Train toy models");
  const toyStatus = el("span", { class: "muted", id: "sup-status" });
  const table = el("div", { id: "sup-table" });
  const geometry = el("div", { id: "sup-geometry", class: "row" });
  const wtw = el("div", { id: "sup-wtw", class: "row" });
  const norms = el("div", { id: "sup-norms", style: "width:100%;height:300px" });

  const oFields = {};
  const oAdd = (key, label, value, attrs) => { const [l, i] = numberField(el, `sup-ortho-${key}`, label, value, attrs); oFields[key] = i; return l; };
  const orthoControls = [oAdd("n", "Vectors n", 1000, { min: 2, max: 5000 }), oAdd("dim", "Dimension", 50, { min: 1, max: 1000 }),
    oAdd("steps", "Adam steps", 40, { min: 0, max: 500 })];
  const orthoGo = el("button", { id: "sup-ortho-run" }, "Measure");
  const orthoStatus = el("span", { class: "muted", id: "sup-ortho-status" });
  const orthoTable = el("div", { id: "sup-ortho-table" });
  const orthoHist = el("div", { id: "sup-ortho-hist", style: "width:100%;height:340px" });

  const [biasL, bias] = numberField(el, "sup-mem-bias", "AND bias", -1, { step: 0.5 });
  const memGo = el("button", { id: "sup-mem-run" }, "Run the neuron");
  const memTable = el("div", { id: "sup-mem-table" });
  const memBars = el("div", { id: "sup-mem-bars", style: "width:520px;height:300px" });

  root.append(
    el("h1", {}, "Superposition"),
    el("h2", {}, "Toy models of superposition: x′ = ReLU(WᵀWx + b)"),
    el("div", { class: "controls" }, ...toyControls, toyGo, toyStatus),
    table, geometry, wtw, norms,
    el("h2", {}, "Nearly perpendicular vectors: the random start and two optimisers"),
    el("div", { class: "controls" }, ...orthoControls, orthoGo, orthoStatus),
    orthoTable, orthoHist,
    el("h2", {}, "The MLP as a fact memory: one AND neuron (Michael Jordan → basketball)"),
    el("div", { class: "controls" }, biasL, memGo),
    el("div", { class: "row" }, memTable, memBars),
  );

  const fmt = (x, d = 3) => (x === null || x === undefined ? "–" : Number(x).toFixed(d));
  const tableOf = (head, rows) => el("table", { class: "top" }, el("tr", {}, head.map((h) => el("th", { style: "padding:1px 8px" }, h))),
    rows.map((r) => el("tr", {}, r.map((c) => el("td", {}, c)))));

  async function runToy() {
    showError(root, null);
    toyGo.disabled = true;
    const body = Object.fromEntries(Object.entries(fields).map(([k, i]) => [k, Number(i.value)]));
    try {
      const job = await api("/api/superposition/toy", body);
      const r = await waitJob(api, job, (s) => { toyStatus.textContent = jobText(s); });
      toyStatus.textContent = `${r.config.instances} models, n = ${r.n} features in m = ${r.m} dims, ${r.config.steps} steps in ${r.seconds.toFixed(1)} s`;
      table.replaceChildren(tableOf(["instance", "D*", "loss", "norms", "adjacent angles"], r.instances.map((inst, k) =>
        [String(k), fmt(inst.d_star), fmt(inst.loss, 4), inst.norms.map((v) => v.toFixed(2)).join(" "),
          inst.angles_deg.length ? inst.angles_deg.map((a) => `${a.toFixed(0)}°`).join(" ") : "–"])));
      geometry.replaceChildren();
      if (r.m === 2) {
        r.W.forEach((W, k) => {
          const div = el("div", { class: "sup-directions", style: "width:260px;height:260px" });
          geometry.append(div);
          const traces = W[0].map((_, i) => ({ x: [0, W[0][i]], y: [0, W[1][i]], mode: "lines+markers", name: `feature ${i}`,
            line: { width: 2, color: `hsl(${(300 * i) / Math.max(1, r.n - 1)}, 70%, ${30 + 40 * (1 - r.importance[i])}%)` },
            marker: { size: [0, 7] }, hovertemplate: `feature ${i}, importance ${r.importance[i].toFixed(2)}<extra></extra>` }));
          Plotly.react(div, traces, { showlegend: false, margin: { l: 30, r: 10, t: 30, b: 25 },
            title: { text: `instance ${k}: D* ${fmt(r.instances[k].d_star, 2)}`, font: { size: 11 } },
            xaxis: { range: [-1.5, 1.5], zeroline: true }, yaxis: { range: [-1.5, 1.5], scaleanchor: "x" } }, PLOT_CONFIG);
        });
      }
      wtw.replaceChildren();
      r.wtw.slice(0, 4).forEach((M, k) => {
        const div = el("div", { class: "sup-wtw", style: "width:300px;height:280px" });
        wtw.append(div);
        Plotly.react(div, [{ type: "heatmap", z: M, colorscale: DIVERGING, zmid: 0, zmin: -1, zmax: 1,
          hovertemplate: "W_%{y}ᵀW_%{x}: %{z:.2f}<extra></extra>", colorbar: { thickness: 8 } }],
        { title: { text: `WᵀW, instance ${k}`, font: { size: 11 } }, margin: { l: 30, r: 10, t: 30, b: 25 },
          yaxis: { autorange: "reversed", scaleanchor: "x" } }, PLOT_CONFIG);
      });
      const feats = r.instances[0].norms.map((_, i) => i);
      await Plotly.react(norms, r.instances.slice(0, 4).flatMap((inst, k) => [
        { type: "bar", x: feats, y: inst.norms, name: `‖W_i‖, instance ${k}`, marker: { color: `hsl(${210 + 30 * k},60%,45%)` } },
        { type: "scatter", mode: "markers", x: feats, y: inst.dimensionality, name: `D_i, instance ${k}`, yaxis: "y",
          marker: { symbol: "diamond", size: 8, color: `hsl(${20 + 30 * k},80%,45%)` } }]),
      { barmode: "group", title: { text: "feature norms ‖W_i‖ (bars) and dimensionalities D_i (diamonds)", font: { size: 12 } },
        margin: { l: 40, r: 10, t: 30, b: 40 }, xaxis: { title: { text: "feature i (importance falls to the right)" }, dtick: 1 } }, PLOT_CONFIG);
    } catch (e) {
      toyStatus.textContent = "";
      showError(root, e);
    } finally { toyGo.disabled = false; }
  }

  async function runOrtho() {
    showError(root, null);
    orthoGo.disabled = true;
    const body = Object.fromEntries(Object.entries(oFields).map(([k, i]) => [k, Number(i.value)]));
    try {
      const job = await api("/api/superposition/orthogonal", body);
      const r = await waitJob(api, job, (s) => { orthoStatus.textContent = jobText(s); });
      orthoStatus.textContent = `${r.n.toLocaleString()} unit vectors in ${r.dim} dims; Welch bound: any set has max |cos| ≥ ${r.welch_max_abs_cos.toFixed(4)}`;
      const rows = [["random", r.random, null], ...r.runs.map((x) => [x.loss, x, x.seconds])];
      orthoTable.replaceChildren(tableOf(["set", "min angle", "max angle", "max |cos|", "89–91°", "rms cos", "time"], rows.map(([name, st, sec]) =>
        [name, `${fmt(st.min_angle_deg, 1)}°`, `${fmt(st.max_angle_deg, 1)}°`, fmt(st.max_abs_cos, 4), `${(100 * st.frac_within_89_91).toFixed(1)}%`,
          fmt(st.rms_cos, 4), sec === null ? "" : `${sec.toFixed(1)} s`])));
      const binned = (h) => { // the 3,600 fine bins summed into 0.5° bins, so the curves read
        const sums = new Map();
        h.angle_deg.forEach((a, i) => { const b = Math.round(a * 2) / 2; sums.set(b, (sums.get(b) || 0) + h.pairs[i]); });
        const xs = [...sums.keys()].sort((a, b) => a - b);
        return { x: xs, y: xs.map((x) => sums.get(x)) };
      };
      await Plotly.react(orthoHist, Object.entries(r.hist).map(([name, h]) => ({ type: "scatter", mode: "lines", ...binned(h),
        name, line: { color: SETS[name] || "#555", width: 1.5, shape: "hvh" } })),
      { title: { text: "pairwise angles in 0.5° bins (every pair counted, log scale; band: 89–91°)", font: { size: 12 } }, margin: { l: 50, r: 10, t: 30, b: 40 },
        yaxis: { type: "log", title: { text: "pairs" } }, xaxis: { title: { text: "angle (degrees)" } },
        shapes: [{ type: "rect", xref: "x", yref: "paper", x0: 89, x1: 91, y0: 0, y1: 1, fillcolor: "#fde725", opacity: 0.35, line: { width: 0 }, layer: "below" }] }, PLOT_CONFIG);
    } catch (e) {
      orthoStatus.textContent = "";
      showError(root, e);
    } finally { orthoGo.disabled = false; }
  }

  async function runMemory() {
    showError(root, null);
    try {
      const r = await api("/api/superposition/memory", { bias: Number(bias.value) });
      memTable.replaceChildren(tableOf(["prompt", "pre", "post", "basketball added", "without the AND bias"], r.toy.map((row, i) =>
        [row.prompt, row.pre.toFixed(2), row.post.toFixed(2), row.basketball.toFixed(2), r.without_and[i].basketball.toFixed(2)])));
      await Plotly.react(memBars, [
        { type: "bar", x: r.toy.map((x) => x.prompt), y: r.toy.map((x) => x.basketball), name: `bias ${r.bias} (AND)`, marker: { color: "#2a788e" } },
        { type: "bar", x: r.without_and.map((x) => x.prompt), y: r.without_and.map((x) => x.basketball), name: "bias 0 (no AND)", marker: { color: "#bddf26" } },
      ], { barmode: "group", title: { text: "basketball written per prompt", font: { size: 12 } }, margin: { l: 40, r: 10, t: 30, b: 40 } }, PLOT_CONFIG);
    } catch (e) { showError(root, e); }
  }

  toyGo.addEventListener("click", runToy);
  orthoGo.addEventListener("click", runOrtho);
  memGo.addEventListener("click", runMemory);
  await runMemory();
}
