// The workbench shell: nav from /api/info, a hash router (#/lens), shared helpers for the page modules.
// A page is static/pages/<id>.js exporting `render(root, ctx)`; see docs/web.md, "Adding a page".

export async function api(path, body, method) {
  const opts = body === undefined ? { method: method || "GET" }
    : { method: method || "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const res = await fetch(path, opts);
  let data = null;
  try { data = await res.json(); } catch (e) { /* not JSON */ }
  if (!res.ok) throw new Error((data && data.error) || `${res.status} ${res.statusText}`);
  return data;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  return node;
}

// Token text for display: spaces as ␣ and newlines as ↵ (the JSON keeps exact text).
export function visible(tok) {
  return String(tok).replace(/ /g, "␣").replace(/\n/g, "↵").replace(/\t/g, "⇥") || "∅";
}

export function showError(root, err) {
  root.querySelectorAll(":scope > .error").forEach((n) => n.remove());
  if (err) root.prepend(el("div", { class: "error", role: "alert" }, err.message || String(err)));
}

let plotlyPromise = null;
// Plotly is big (4.8 MB): loaded on first use, from the local plotly package (never a CDN).
export function loadPlotly() {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  plotlyPromise ||= new Promise((resolve, reject) => {
    const s = el("script", { src: "/vendor/plotly.min.js" });
    s.onload = () => resolve(window.Plotly);
    s.onerror = () => reject(new Error("could not load /vendor/plotly.min.js"));
    document.head.append(s);
  });
  return plotlyPromise;
}

// The top-k list of one cell as a small table with probability bars.
export function topTable(top, changedIds) {
  return el("table", { class: "top" }, top.map((t, i) => el("tr", { class: changedIds && changedIds.has(t.id) ? "changed" : "" },
    el("td", {}, String(i + 1)), el("td", { class: "tok" }, visible(t.token)),
    el("td", {}, (100 * t.prob).toFixed(2) + "%"),
    el("td", { class: "bar" }, el("span", { style: `width:${Math.max(1, 120 * t.prob)}px` })))));
}

const state = { info: null, pages: [] };

async function route() {
  const root = document.getElementById("page");
  const id = (location.hash.replace(/^#\/?/, "").split("?")[0]) || "home";
  const page = state.pages.find((p) => p.id === id) || state.pages[0];
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.id === page.id));
  root.replaceChildren();
  try {
    const mod = await import(`/static/pages/${page.id}.js`);
    await mod.render(root, { api, el, visible, showError, loadPlotly, topTable, info: state.info, pages: state.pages });
  } catch (e) {
    showError(root, e);
  }
}

async function start() {
  const nav = document.getElementById("nav");
  try {
    state.info = await api("/api/info");
  } catch (e) {
    showError(document.getElementById("page"), e);
    return;
  }
  state.pages = state.info.pages;
  nav.replaceChildren(...state.pages.map((p) => el("a", { href: `#/${p.id}`, "data-id": p.id }, p.title)));
  document.getElementById("model-badge").textContent = `model: ${state.info.model}` + (state.info.loaded ? "" : " (loads on first use)");
  window.addEventListener("hashchange", route);
  await route();
}

start();
