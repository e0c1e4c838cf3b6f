// Home: the loaded model and the pages.
export async function render(root, { el, info, pages }) {
  const cfg = info.config || {};
  root.append(
    el("h1", {}, "mechscope workbench"),
    el("p", {}, "Live analyses on the loaded model; every page calls the same library functions as the CLI."),
    el("div", { class: "panel", id: "model-info" },
      el("b", {}, info.model), info.loaded
        ? ` — ${cfg.n_layers} layers, d_model ${cfg.d_model}, ${cfg.n_heads} heads, vocabulary ${cfg.d_vocab}, context ${cfg.n_ctx}` +
          `, on ${info.device}` + (info.tuned_lens ? "; tuned lens available" : "; no tuned lens")
        : " (loads on first use)"),
    el("h2", {}, "Pages"),
    el("div", { class: "cards" }, pages.filter((p) => p.id !== "home").map((p) =>
      el("a", { href: `#/${p.id}` }, el("div", { class: "panel" }, el("b", {}, p.title), el("div", { class: "muted" }, p.summary))))),
  );
}
