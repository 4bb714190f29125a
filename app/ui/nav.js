// Moving between pages (hash routes), messages that survive a move, and confirmations.

import { withQuery } from "./api.js";
import { h } from "./dom.js";

let pending = null;
let rerender = () => {};

export function setRenderer(render) {
  rerender = render;
}

// Go to a page; the same page again is rendered again (fresh from the API).
export function go(hash, message) {
  pending = message || null;
  if (location.hash === hash) rerender();
  else location.hash = hash;
}

// The message handed over by the last go(), shown once on the next page.
export function flash() {
  const message = pending;
  pending = null;
  return h("p", { class: "status", role: "status", hidden: !message }, message || "");
}

export function link(hash, text) {
  return h("a", { href: hash }, text);
}

// "First page" and "Next page" links over a keyset-paginated list.
export function pager(base, params, nextCursor, label) {
  const links = [];
  if (params.cursor) links.push(link(withQuery(base, { ...params, cursor: null }), "First page"));
  if (nextCursor) links.push(link(withQuery(base, { ...params, cursor: nextCursor }), "Next page"));
  if (links.length === 0) return null;
  return h("nav", { class: "pager", "aria-label": label }, links);
}

// A button that asks before it acts: the question and a second, explicit button appear.
export function confirmButton({ label, question, confirmLabel, action }) {
  const slot = h("p", { class: "error", "aria-live": "polite", hidden: true });
  const yes = h("button", { type: "button", class: "danger" }, confirmLabel);
  const no = h("button", { type: "button" }, "Cancel");
  const box = h("div", { class: "confirm", role: "group", "aria-label": question, hidden: true },
    h("p", {}, question), h("div", { class: "actions" }, yes, no));
  const open = h("button", { type: "button", class: "danger" }, label);
  open.addEventListener("click", () => {
    box.hidden = false;
    open.hidden = true;
    yes.focus();
  });
  no.addEventListener("click", () => {
    box.hidden = true;
    open.hidden = false;
    slot.hidden = true;
    open.focus();
  });
  yes.addEventListener("click", async () => {
    yes.disabled = true;
    slot.hidden = true;
    try {
      await action();
    } catch (problem) {
      slot.textContent = problem.detail || String(problem);
      slot.hidden = false;
    } finally {
      yes.disabled = false;
    }
  });
  return h("div", { class: "danger-zone" }, open, box, slot);
}
