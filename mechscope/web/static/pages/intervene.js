// Intervene: build interventions (the JSON of docs/interventions.md) on a hook from GET /api/hooks, then
// POST /api/run → top-10 before/after side by side and greedy continuations side by side.
// Save/load the intervention list as a JSON file.

const MODES = {
  set: "set to value",
  clamp: "clamp into [min, max]",
  add: "add value (steer)",
  zero: "ablate: zero",
  mean: "ablate: mean over positions",
  scale: "scale by value",
};

function ints(text, what) {
  const s = text.trim();
  if (!s) return null;
  const out = s.split(/[\s,]+/).filter(Boolean).map((x) => {
    if (!/^-?\d+$/.test(x)) throw new Error(`${what}: "${x}" is not a whole number (give e.g. 3, 5, -1)`);
    return Number(x);
  });
  return out;
}

function num(text, what) {
  const v = Number(text);
  if (text.trim() === "" || !Number.isFinite(v)) throw new Error(`${what} must be a number, got "${text}"`);
  return v;
}

export async function render(root, ctx) {
  const { api, el, visible, showError, topTable } = ctx;
  const { hooks } = await api("/api/hooks");
  const byName = Object.fromEntries(hooks.map((h) => [h.name, h]));
  const prompt = el("textarea", { class: "prompt", id: "iv-prompt" }, "The reliability of Wikipedia is very");
  const gen = el("input", { class: "small", type: "number", id: "iv-generate", value: 12, min: 0, max: 64 });
  const hookSel = el("select", { id: "iv-hook" }, hooks.map((h) => el("option", { value: h.name }, `${h.name}  [${h.sizes.join("×")}]`)));
  const positions = el("input", { id: "iv-positions", placeholder: "all (e.g. -1 or 3,4)", size: 14 });
  const selLabel = el("span", {}, "dims");
  const selector = el("input", { id: "iv-selector", placeholder: "all (e.g. 163)", size: 14 });
  const heads = el("input", { id: "iv-heads", placeholder: "all (e.g. 0,2)", size: 10 });
  const headsBox = el("label", {}, "heads", heads);
  const mode = el("select", { id: "iv-mode" }, Object.entries(MODES).map(([k, v]) => el("option", { value: k }, v)));
  const value = el("input", { class: "small", id: "iv-value", value: "0" });
  const vmin = el("input", { class: "small", id: "iv-min", placeholder: "none" });
  const vmax = el("input", { class: "small", id: "iv-max", placeholder: "none" });
  const valueBox = el("label", {}, "value", value);
  const clampBox = el("span", { style: "display:none;gap:10px" }, el("label", {}, "min", vmin), el("label", {}, "max", vmax));
  const addBtn = el("button", { class: "secondary", id: "iv-add" }, "Add edit");
  const list = el("textarea", { class: "json", id: "iv-json", spellcheck: "false" }, "[]");
  const runBtn = el("button", { id: "iv-run" }, "Run before / after");
  const saveBtn = el("button", { class: "secondary", id: "iv-save" }, "Save JSON");
  const loadInput = el("input", { type: "file", accept: ".json,application/json", id: "iv-load", style: "display:none" });
  const loadBtn = el("button", { class: "secondary", id: "iv-load-btn" }, "Load JSON");
  const clearBtn = el("button", { class: "secondary", id: "iv-clear" }, "Clear");
  const status = el("span", { class: "muted", id: "iv-status" });
  const out = el("div", { id: "iv-out" });

  root.append(
    el("h1", {}, "Intervene"),
    el("div", { class: "controls" }, el("label", {}, "Prompt", prompt), el("label", {}, "generate tokens", gen)),
    el("div", { class: "panel" },
      el("div", { class: "controls" }, el("label", {}, "hook", hookSel), el("label", {}, "positions", positions),
        el("label", {}, selLabel, selector), headsBox, el("label", {}, "mode", mode), valueBox, clampBox, addBtn),
      el("div", { class: "legend", id: "iv-hook-note" }),
      el("label", { class: "legend" }, "Interventions (JSON, applied in order; editable):"), list,
      el("div", { class: "controls" }, runBtn, saveBtn, loadBtn, loadInput, clearBtn, status)),
    out,
  );

  function syncHook() {
    const h = byName[hookSel.value];
    const last = h.select.find((s) => s === "dims" || s === "neurons");
    selLabel.textContent = last || "(no last-axis selection)";
    selector.disabled = !last;
    headsBox.style.display = h.select.includes("heads") ? "" : "none";
    document.getElementById("iv-hook-note").textContent = `${h.name}: shape [${h.shape.join(", ")}] = [${h.sizes.join(", ")}]` +
      (last === "neurons" ? " — MLP neurons" : last === "dims" ? (h.shape.includes("d_model") ? " — residual-stream coordinates, not neurons" : " — per-head coordinates") : " — attention probabilities");
  }
  function syncMode() {
    const m = mode.value;
    valueBox.style.display = ["set", "add", "scale"].includes(m) ? "" : "none";
    clampBox.style.display = m === "clamp" ? "flex" : "none";
  }
  hookSel.addEventListener("change", syncHook);
  mode.addEventListener("change", syncMode);
  const preferred = hooks.find((h) => h.name.endsWith("hook_mlp_out") && h.layer === Math.floor(hooks.filter((x) => x.name.endsWith("hook_mlp_out")).length / 2));
  if (preferred) hookSel.value = preferred.name;
  syncHook(); syncMode();

  function current() {
    let edits;
    try { edits = JSON.parse(list.value || "[]"); } catch (e) { throw new Error(`the interventions box is not valid JSON (${e.message})`); }
    return Array.isArray(edits) ? edits : [edits];
  }

  function build() {
    const h = byName[hookSel.value];
    const edit = { kind: mode.value, hook: h.name };
    const pos = ints(positions.value, "positions");
    if (pos) edit.positions = pos;
    const last = h.select.find((s) => s === "dims" || s === "neurons");
    const sel = last ? ints(selector.value, last) : null;
    if (sel) edit[last] = sel;
    if (h.select.includes("heads")) { const hs = ints(heads.value, "heads"); if (hs) edit.heads = hs; }
    const m = mode.value;
    if (m === "set") edit.value = num(value.value, "value");
    if (m === "scale") edit.factor = num(value.value, "value");
    if (m === "add") { // a vector along the hook's last axis: ones × value (only the selected entries change)
      edit.vector = new Array(h.sizes[h.sizes.length - 1]).fill(1);
      edit.scale = num(value.value, "value");
    }
    if (m === "clamp") {
      if (vmin.value.trim()) edit.min = num(vmin.value, "min");
      if (vmax.value.trim()) edit.max = num(vmax.value, "max");
      if (edit.min === undefined && edit.max === undefined) throw new Error("clamp needs min, max or both");
    }
    return edit;
  }

  // one edit per line (a steering vector stays on its line)
  function show(edits) { list.value = edits.length ? "[\n" + edits.map((e) => " " + JSON.stringify(e)).join(",\n") + "\n]" : "[]"; }

  addBtn.addEventListener("click", () => {
    showError(root, null);
    try { show([...current(), build()]); } catch (e) { showError(root, e); }
  });
  clearBtn.addEventListener("click", () => { list.value = "[]"; });
  saveBtn.addEventListener("click", () => {
    try {
      const blob = new Blob([JSON.stringify(current(), null, 1)], { type: "application/json" });
      const a = el("a", { href: URL.createObjectURL(blob), download: "interventions.json" });
      document.body.append(a); a.click(); a.remove();
    } catch (e) { showError(root, e); }
  });
  loadBtn.addEventListener("click", () => loadInput.click());
  loadInput.addEventListener("change", async () => {
    const f = loadInput.files[0];
    if (!f) return;
    try { const parsed = JSON.parse(await f.text()); show(Array.isArray(parsed) ? parsed : [parsed]); showError(root, null); }
    catch (e) { showError(root, new Error(`${f.name} is not valid JSON (${e.message})`)); }
    loadInput.value = "";
  });

  runBtn.addEventListener("click", async () => {
    showError(root, null);
    let edits;
    try { edits = current(); } catch (e) { showError(root, e); return; }
    if (!edits.length) { try { edits = [build()]; show(edits); } catch (e) { showError(root, e); return; } }
    runBtn.disabled = true; status.textContent = "running…";
    const t0 = performance.now();
    try {
      const res = await api("/api/run", { prompt: prompt.value, interventions: edits, generate: Number(gen.value) || 0, top_k: 10 });
      status.textContent = `${((performance.now() - t0) / 1000).toFixed(2)} s`;
      draw(res);
    } catch (e) { status.textContent = ""; showError(root, e); }
    finally { runBtn.disabled = false; }
  });

  function draw({ before, after }) {
    const beforeIds = new Set(before.top.map((t) => t.id));
    const entered = new Set(after.top.filter((t) => !beforeIds.has(t.id)).map((t) => t.id));
    const p = before.position, tok = before.tokens.at(p);
    const col = (title, run, changed, id) => el("div", { class: "panel half", id },
      el("h2", {}, title), el("div", { class: "legend" }, `next token after ${visible(tok)}`), topTable(run.top, changed),
      run.generated !== undefined ? [el("h2", {}, "continuation"), el("div", { class: "continuation" }, run.generated)] : null);
    out.replaceChildren(el("div", { class: "row" },
      col("Before", before, null, "iv-before"),
      col(`After ${after.interventions.length} edit${after.interventions.length === 1 ? "" : "s"}`, after, entered, "iv-after")));
  }
}
