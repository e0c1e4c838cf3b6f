// Lens: POST /api/lens → rows × positions grid (top-1 token per cell), top-10 on hover/click,
// the selected position's residual vector per row as an image, the next-token bar chart.

const COLOR_BY = {
  prob: { label: "top-1 probability", value: (c) => c.top[0].prob, max: () => 1 },
  entropy: { label: "entropy (nats)", value: (c) => c.entropy, max: (d) => maxOf(d, (c) => c.entropy) },
  kl: { label: "KL(final ‖ row) (nats)", value: (c) => c.kl_to_final, max: (d) => maxOf(d, (c) => c.kl_to_final) },
};

function maxOf(data, f) {
  let m = 1e-9;
  for (const r of data.rows) for (const c of r.cells) if (Number.isFinite(f(c))) m = Math.max(m, f(c));
  return m;
}

// white → blue; text turns white on dark cells
function shade(x) {
  const t = Math.max(0, Math.min(1, x));
  const c = (a, b) => Math.round(a + (b - a) * t);
  return { bg: `rgb(${c(255, 24)},${c(255, 74)},${c(255, 170)})`, fg: t > 0.55 ? "#fff" : "#111" };
}

export async function render(root, ctx) {
  const { api, el, visible, showError, loadPlotly, topTable, info } = ctx;
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const prompt = el("textarea", { class: "prompt", id: "lens-prompt" }, params.get("prompt") || "The reliability of Wikipedia is very");
  const lensSel = el("select", { id: "lens-kind" }, el("option", { value: "logit" }, "logit lens"),
    el("option", { value: "tuned", disabled: !info.tuned_lens }, info.tuned_lens ? "tuned lens" : "tuned lens (none trained)"));
  const sub = el("input", { type: "checkbox", id: "lens-sublayers" });
  const colorSel = el("select", { id: "lens-color" }, Object.entries(COLOR_BY).map(([k, v]) => el("option", { value: k }, v.label)));
  const go = el("button", { id: "lens-run" }, "Run lens");
  const status = el("span", { class: "muted", id: "lens-status" });
  const grid = el("div", { class: "gridwrap", id: "lens-grid" });
  const legend = el("div", { class: "legend", id: "lens-legend" });
  const cellInfo = el("div", { class: "panel", id: "lens-cell" }, el("span", { class: "muted" }, "Hover a cell for its top-10; click to pin its position."));
  const bars = el("div", { id: "lens-bars", style: "width:420px;height:300px" });
  const vectors = el("div", { id: "lens-vectors", style: "width:100%;height:420px" });
  root.append(
    el("h1", {}, "Lens"),
    el("div", { class: "controls" },
      el("label", {}, "Prompt", prompt), el("label", {}, "Lens", lensSel),
      el("label", {}, el("span", {}, sub, " after attention too"), ""),
      el("label", {}, "Colour by", colorSel), go, status),
    legend,
    el("div", { class: "row" }, grid, el("div", {}, cellInfo, bars)),
    el("h2", {}, "Residual vector per row at the selected position"),
    el("div", { class: "legend" }, "Each row's raw residual vector, divided by its RMS (colour clipped at ±3)."),
    vectors,
  );

  let data = null;
  let pinned = null; // [rowIndex, pos]

  function drawGrid() {
    const by = COLOR_BY[colorSel.value];
    const max = by.max(data);
    const order = data.rows.map((_, i) => i).reverse(); // output row on top, embedding at the bottom
    const head = el("tr", {}, el("th", {}, ""), data.tokens.map((t, p) =>
      el("th", { class: "pos" + (p === data.view.position ? " sel" : ""), title: JSON.stringify(t) }, visible(t))));
    const body = order.map((r) => {
      const row = data.rows[r];
      return el("tr", {}, el("th", { title: row.hook }, row.label), row.cells.map((c, p) => {
        const v = by.value(c);
        const { bg, fg } = shade(v / max);
        const td = el("td", { style: `background:${bg};color:${fg}`, "data-row": r, "data-pos": p,
          title: `${row.label} @ ${p}: ${visible(c.top[0].token)} ${(100 * c.top[0].prob).toFixed(1)}%` }, visible(c.top[0].token));
        td.addEventListener("mouseenter", () => { showCell(r, p); td.classList.add("hover"); });
        td.addEventListener("mouseleave", () => td.classList.remove("hover"));
        td.addEventListener("click", () => pin(r, p));
        if (pinned && pinned[0] === r && pinned[1] === p) td.classList.add("pinned");
        return td;
      }));
    });
    grid.replaceChildren(el("table", { class: "grid" }, head, body));
    legend.textContent = `${data.lens} lens on ${data.model}: ${data.rows.length} rows × ${data.tokens.length} positions; ` +
      `cell = top-1 token, colour = ${by.label} (white 0 → blue ${max.toFixed(max < 10 ? 2 : 0)}).`;
  }

  function showCell(r, p) {
    const row = data.rows[r], c = row.cells[p];
    const facts = `entropy ${c.entropy.toFixed(2)} nats, KL to final ${c.kl_to_final.toFixed(2)}` +
      (c.next_token_rank ? `, next token ${visible(data.tokens[p + 1])} at rank ${c.next_token_rank}` : "");
    cellInfo.replaceChildren(el("b", {}, `${row.label}, position ${p} (${visible(data.tokens[p])})`),
      el("div", { class: "muted" }, facts), topTable(c.top));
  }

  async function pin(r, p) {
    pinned = [r, p];
    showCell(r, p);
    if (p !== data.view.position) {
      try {
        const fresh = await api("/api/lens", request(p));
        data.view = fresh.view;
      } catch (e) { showError(root, e); }
    }
    drawGrid();
    await drawCharts();
  }

  function request(position) {
    return { prompt: prompt.value, lens: lensSel.value, sublayers: sub.checked, top_k: 10, position };
  }

  async function drawCharts() {
    const Plotly = await loadPlotly();
    const p = data.view.position;
    const final = data.rows[data.rows.length - 1].cells[p].top;
    await Plotly.react(bars, [{ type: "bar", orientation: "h", x: final.map((t) => t.prob).reverse(),
      y: final.map((t, i) => `${i + 1}. ${visible(t.token)}`).reverse(), marker: { color: "#2457c5" },
      hovertemplate: "%{y}: %{x:.2%}<extra></extra>" }],
    { title: { text: `next token after position ${p} (${visible(data.tokens[p])})`, font: { size: 13 } },
      margin: { l: 110, r: 10, t: 36, b: 30 }, xaxis: { tickformat: final[0].prob < 0.05 ? ".1%" : ".0%" } }, { displayModeBar: false, responsive: true });
    const z = data.view.resid.map((v, r) => v.map((x) => x / (data.view.resid_rms[r] || 1)));
    await Plotly.react(vectors, [{ type: "heatmap", z, y: data.rows.map((r) => r.label), colorscale: "RdBu", reversescale: true,
      zmin: -3, zmax: 3, zmid: 0, hovertemplate: "%{y} dim %{x}: %{z:.2f} × rms<extra></extra>",
      colorbar: { title: { text: "× rms" }, thickness: 10 } }],
    { margin: { l: 70, r: 10, t: 10, b: 36 }, xaxis: { title: { text: "dimension" } } }, { displayModeBar: false, responsive: true });
  }

  async function run() {
    go.disabled = true;
    status.textContent = "running…";
    showError(root, null);
    const started = performance.now();
    try {
      data = await api("/api/lens", request(-1));
      pinned = null;
      drawGrid();
      const last = data.tokens.length - 1;
      showCell(data.rows.length - 1, last);
      status.textContent = `${((performance.now() - started) / 1000).toFixed(2)} s`;
      await drawCharts();
    } catch (e) {
      status.textContent = "";
      showError(root, e);
    } finally {
      go.disabled = false;
    }
  }

  go.addEventListener("click", run);
  colorSel.addEventListener("change", () => data && drawGrid());
  prompt.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(); });
  if (params.get("prompt")) run();
}
