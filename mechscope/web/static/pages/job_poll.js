// Shared by the Neurons & features and Diffing pages: run a background job (POST → job JSON), poll
// GET /api/jobs/{id} every 0.4 s showing its progress, cancel with DELETE. Resolves with the result,
// rejects with the job's one-line error (or "cancelled").

export function jobRunner(ctx, status, cancelBtn) {
  const { api } = ctx;
  let current = null;
  cancelBtn.disabled = true;
  cancelBtn.addEventListener("click", async () => {
    if (current) { try { await api(`/api/jobs/${current}`, undefined, "DELETE"); } catch (e) { /* already gone */ } }
  });
  return async function run(path, body) {
    const job = await api(path, body);
    current = job.id; cancelBtn.disabled = false;
    try {
      for (;;) {
        const j = await api(`/api/jobs/${job.id}`);
        const p = j.progress;
        const pct = p.total ? ` ${Math.round((100 * p.done) / p.total)}%` : "";
        status.textContent = `${j.state}${p.message ? ": " + p.message : ""}${pct}`;
        if (j.state === "done") { status.textContent = `done (${((j.finished - j.started) || 0).toFixed(2)} s)`; return j.result; }
        if (j.state === "failed") throw new Error(j.error);
        if (j.state === "cancelled") throw new Error("the job was cancelled");
        await new Promise((r) => setTimeout(r, 400));
      }
    } finally { current = null; cancelBtn.disabled = true; }
  };
}

// Tokens with per-token shading: orange ∝ activation / max (negative values blue), the max outlined,
// the value in the tooltip. bosFirst: token 0 is BOS, left unshaded.
export function highlight(el, visible, tokens, acts, max, maxPos, bosFirst = false) {
  const m = max > 0 ? max : Math.max(1e-9, ...acts.map((a) => Math.abs(a)));
  return el("div", { class: "ctx", style: "font:12px ui-monospace,Menlo,monospace;line-height:1.9;white-space:pre-wrap;word-break:break-all" },
    tokens.map((t, i) => {
      const a = bosFirst && i === 0 ? 0 : acts[i] || 0; // BOS: shown, never shaded (its activation is an outlier)
      const x = Math.min(1, Math.abs(a) / m);
      const bg = a >= 0 ? `rgba(255,120,0,${(0.85 * x).toFixed(3)})` : `rgba(40,100,220,${(0.6 * x).toFixed(3)})`;
      const outline = i === maxPos ? "outline:2px solid #b42318;" : "";
      return el("span", { class: a > 0 ? "tok on" : "tok", title: `${JSON.stringify(t)}: ${(acts[i] || 0).toFixed(4)}`,
        style: `background:${bg};${outline}padding:1px 0;border-radius:2px` }, String(t).replace(/\n/g, "↵") || "∅");
    }));
}
