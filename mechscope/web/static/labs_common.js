// Helpers shared by the Grokking, Circuits and Superposition pages: background jobs and Plotly defaults.

export const PLOT_CONFIG = { displayModeBar: false, responsive: true };

// Poll GET /api/jobs/{id} until the job finishes; onUpdate(snapshot) on every poll. Returns the result,
// throws an Error with the job's one-line error when it failed (or "cancelled").
export async function waitJob(api, job, onUpdate, every = 400) {
  let snap = job;
  for (;;) {
    if (onUpdate) onUpdate(snap);
    if (snap.state === "done") return snap.result;
    if (snap.state === "failed") throw new Error(snap.error || "the job failed");
    if (snap.state === "cancelled") throw new Error("cancelled");
    await new Promise((r) => setTimeout(r, every));
    snap = await api(`/api/jobs/${encodeURIComponent(job.id)}`);
  }
}

export function jobText(snap) {
  const p = snap.progress || {};
  const frac = p.total ? ` ${Math.round((100 * p.done) / p.total)}% (${p.done.toLocaleString()} / ${p.total.toLocaleString()})` : "";
  return `${snap.state}${p.message ? ": " + p.message : ""}${frac}`;
}

// A labelled number input.
export function numberField(el, id, label, value, attrs = {}) {
  const input = el("input", { id, type: "number", value, class: "small", ...attrs });
  return [el("label", {}, label, input), input];
}

export function textField(el, id, label, value, attrs = {}) {
  const input = el("input", { id, type: "text", value, ...attrs });
  return [el("label", {}, label, input), input];
}

// Diverging colours centred on white: blue negative, red positive (matplotlib's RdBu_r, as the CLI's PNGs).
export const DIVERGING = [[0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1, "#b2182b"]];

// A number for a label: 3 decimals, or 3 significant digits in exponent form when tiny.
export function num(x, digits = 3) {
  if (x === null || x === undefined) return "–";
  return x !== 0 && Math.abs(x) < 10 ** -digits ? x.toExponential(2) : x.toFixed(digits);
}
