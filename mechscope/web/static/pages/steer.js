// Steering: (a) an SAE latent with a dose slider — POST /api/steer with doses [0, slider] → unsteered
// and steered next-token top-10 and greedy continuations side by side; (b) steering vectors — make one
// (POST /api/vector/make: the built-in doubt set or two pasted prompt lists at a hook), apply it with a
// coefficient sweep (POST /api/vector/apply) → target log-prob shift curve, top-10 and text per coefficient.

export async function render(root, ctx) {
  const { api, el, visible, showError, loadPlotly, topTable } = ctx;
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const { hooks } = await api("/api/hooks");
  const resid = hooks.filter((h) => h.shape.join(",") === "batch,pos,d_model");

  // (a) latent steering
  const sae = el("input", { id: "st-sae", size: 24, value: params.get("sae") || "sae", placeholder: "an SAE folder under --runs" });
  const latent = el("input", { id: "st-latent", class: "small", type: "number", min: 0, value: params.get("latent") || 0 });
  const prompt = el("textarea", { class: "prompt", id: "st-prompt" }, params.get("prompt") || "I think that");
  const mode = el("select", { id: "st-mode" }, el("option", { value: "add" }, "add V·W_dec[N]"), el("option", { value: "clamp" }, "clamp f_N to V"));
  const maxDose = el("input", { id: "st-max", class: "small", type: "number", value: 100 });
  const slider = el("input", { id: "st-dose", type: "range", min: -100, max: 100, step: 1, value: 0, style: "width:260px" });
  const doseLabel = el("span", { id: "st-dose-value", style: "min-width:60px" }, "0");
  const gen = el("input", { id: "st-generate", class: "small", type: "number", min: 0, max: 64, value: 16 });
  const status = el("span", { class: "muted", id: "st-status" });
  const latentOut = el("div", { id: "st-out" });
  maxDose.addEventListener("change", () => { const m = Math.abs(Number(maxDose.value)) || 1; slider.min = -m; slider.max = m; slider.step = m / 100; });
  let pending = null;
  async function steer() {
    const v = Number(slider.value);
    doseLabel.textContent = String(v);
    showError(root, null);
    status.textContent = "running…";
    const body = { sae: sae.value, latent: Number(latent.value), prompt: prompt.value, values: [0, v], mode: mode.value, generate: Number(gen.value) || 0 };
    const mine = (pending = JSON.stringify(body));
    try {
      const r = await api("/api/steer", body);
      if (mine !== pending) return; // a newer dose is on its way
      status.textContent = `${r.seconds} s`;
      const [clean, dosed] = r.doses;
      const before = new Set(clean.top.map((t) => t.id));
      const changed = new Set(dosed.top.filter((t) => !before.has(t.id)).map((t) => t.id));
      const col = (title, d, ch, id) => el("div", { class: "panel half", id }, el("h2", {}, title),
        el("div", { class: "legend" }, `KL from unsteered ${d.kl.toFixed(4)} nats`), topTable(d.top, ch),
        el("h2", {}, "continuation (greedy)"), el("div", { class: "continuation" }, d.text));
      latentOut.replaceChildren(
        el("div", { class: "legend" }, `${r.mode} at ${r.target}, ${r.positions}; latent ${r.latent} on the prompt: `,
          r.tokens.map((t, i) => `${visible(t)} ${r.activations[i].toFixed(2)}`).join(" · ")),
        el("div", { class: "row" }, col("Unsteered (dose 0)", clean, null, "st-clean"), col(`Dose ${dosed.value}`, dosed, changed, "st-steered")));
    } catch (e) { status.textContent = ""; showError(root, e); }
  }
  slider.addEventListener("change", steer);
  slider.addEventListener("input", () => { doseLabel.textContent = slider.value; });
  const runLatent = el("button", { id: "st-run" }, "Steer");
  runLatent.addEventListener("click", steer);

  // (b) steering vectors
  const hookSel = el("select", { id: "vec-hook" }, resid.map((h) => el("option", { value: h.name }, h.name)));
  const mid = resid.find((h) => h.name.endsWith("hook_resid_post") && h.layer === Math.floor(resid.filter((x) => x.name.endsWith("hook_resid_post")).length / 2));
  if (mid) hookSel.value = mid.name;
  const pos = el("textarea", { class: "json", id: "vec-pos", placeholder: "positive prompts, one per line" });
  const neg = el("textarea", { class: "json", id: "vec-neg", placeholder: "negative prompts, one per line" });
  const useBuiltin = el("input", { type: "checkbox", id: "vec-builtin", checked: true });
  const fill = el("button", { class: "secondary", id: "vec-fill" }, "Show the doubt set");
  const method = el("select", { id: "vec-method" }, el("option", { value: "mean" }, "difference of means"), el("option", { value: "pca" }, "PCA of paired differences"));
  const position = el("select", { id: "vec-position" }, ["mean", "last", "all"].map((p) => el("option", { value: p }, p)));
  const make = el("button", { id: "vec-make" }, "Make vector");
  const vecInfo = el("span", { class: "muted", id: "vec-info" });
  const vprompt = el("textarea", { class: "prompt", id: "vec-prompt" }, "The claim that the moon landing was faked is");
  const coefs = el("input", { id: "vec-coefs", value: "0,1,2,4,8", size: 16 });
  const targets = el("input", { id: "vec-targets", value: "questionable,true", size: 20 });
  const vgen = el("input", { id: "vec-generate", class: "small", type: "number", min: 0, max: 64, value: 12 });
  const apply = el("button", { id: "vec-apply", disabled: true }, "Apply sweep");
  const curve = el("div", { id: "vec-curve", style: "width:420px;height:260px" });
  const vecOut = el("div", { id: "vec-out" });
  let vectorId = null;
  fill.addEventListener("click", async () => {
    const { sets } = await api("/api/vector/builtin");
    pos.value = sets.doubt.pos.join("\n"); neg.value = sets.doubt.neg.join("\n"); useBuiltin.checked = false;
  });
  make.addEventListener("click", async () => {
    showError(root, null);
    const lines = (t) => t.value.split("\n").map((s) => s.trim()).filter(Boolean);
    const body = { hook: hookSel.value, method: method.value, position: position.value };
    if (useBuiltin.checked) body.builtin = "doubt"; else { body.pos = lines(pos); body.neg = lines(neg); }
    make.disabled = true; vecInfo.textContent = "making…";
    try {
      const v = await api("/api/vector/make", body);
      vectorId = v.id; apply.disabled = false;
      vecInfo.textContent = `${v.id}: ${v.method} at ${v.hook}, norm ${v.norm.toFixed(3)} (${v.meta.n_pos} vs ${v.meta.n_neg} prompts, ${v.meta.source})`;
    } catch (e) { vecInfo.textContent = ""; showError(root, e); }
    finally { make.disabled = false; }
  });
  apply.addEventListener("click", async () => {
    showError(root, null);
    apply.disabled = true;
    try {
      const cs = coefs.value.split(",").map((s) => Number(s.trim()));
      if (cs.some((c) => !Number.isFinite(c))) throw new Error(`coefficients must be numbers like 0,1,2; got "${coefs.value}"`);
      const body = { vector: vectorId, prompt: vprompt.value, coefs: cs, generate: Number(vgen.value) || 0,
        targets: targets.value.split(",").map((s) => s.trim()).filter(Boolean) };
      const r = await api("/api/vector/apply", body);
      const Plotly = await loadPlotly();
      if (r.targets.length) {
        Plotly.newPlot(curve, [{ x: r.coefs.map((c) => c.coef), y: r.coefs.map((c) => c.target_logprob_shift), mode: "lines+markers", line: { color: "#2457c5" } }],
          { margin: { l: 50, r: 10, t: 30, b: 40 }, title: { text: `target log-prob shift (${r.targets.map((t) => visible(t.token)).join(", ")})`, font: { size: 12 } },
            xaxis: { title: { text: "coefficient" } }, yaxis: { title: { text: "nats" } } }, { displayModeBar: false });
      } else curve.replaceChildren(el("span", { class: "muted" }, "no target words: no curve"));
      vecOut.replaceChildren(el("div", { class: "row", style: "flex-wrap:nowrap;overflow-x:auto" }, r.coefs.map((c) => el("div", { class: "panel", style: "min-width:230px" },
        el("h2", {}, `c = ${c.coef}`), el("div", { class: "legend" }, `KL ${c.kl.toFixed(4)}` + (c.target_logprob_shift !== null ? ` · shift ${c.target_logprob_shift.toFixed(3)}` : "")),
        topTable(c.top), c.text ? el("div", { class: "continuation" }, c.text) : null))));
    } catch (e) { showError(root, e); }
    finally { apply.disabled = !vectorId; }
  });

  root.append(
    el("h1", {}, "Steering"),
    el("div", { class: "panel" },
      el("h2", {}, "SAE latent: dose slider"),
      el("div", { class: "controls" }, el("label", {}, "SAE folder", sae), el("label", {}, "latent", latent), el("label", {}, "mode", mode),
        el("label", {}, "generate", gen), el("label", {}, "slider range ±", maxDose)),
      el("div", { class: "controls" }, el("label", {}, "Prompt", prompt), el("label", {}, "dose V", el("span", { style: "display:flex;gap:8px;align-items:center" }, slider, doseLabel)), runLatent, status),
      latentOut),
    el("div", { class: "panel", style: "margin-top:14px" },
      el("h2", {}, "Steering vector: make, then apply with a coefficient sweep"),
      el("div", { class: "controls" }, el("label", {}, "hook", hookSel), el("label", {}, "method", method), el("label", {}, "position", position),
        el("label", {}, el("span", {}, useBuiltin, " built-in doubt set"), ""), fill, make, vecInfo),
      el("div", { class: "row" }, el("label", { class: "half legend" }, "positive prompts (one per line)", pos), el("label", { class: "half legend" }, "negative prompts", neg)),
      el("div", { class: "controls" }, el("label", {}, "Prompt", vprompt), el("label", {}, "coefficients", coefs), el("label", {}, "target words", targets),
        el("label", {}, "generate", vgen), apply),
      el("div", { class: "row" }, curve, vecOut)),
  );
  if (params.get("sae")) steer();
}
