// Audit (admins): the newest changes first, filtered by resource and actor.

import { Problem, can, path, request, withQuery } from "./api.js";
import { field, formError, h, input, showProblem, table } from "./dom.js";
import { go, link, pager } from "./nav.js";

const PAGE_SIZE = 25;

// users/jsmith and groups/admins link to their pages; others are shown as they are.
function resourceLink(resource) {
  const match = /^(users|groups)\/([^/]+)/.exec(resource);
  return match ? link(`#${path(match[1], decodeURIComponent(match[2]))}`, resource) : resource;
}

function change(entry) {
  const show = (value) => (value === null ? "—" : JSON.stringify(value, null, 1));
  return h(
    "details",
    {},
    h("summary", {}, "Before and after"),
    h("div", { class: "diff" },
      h("div", {}, h("h3", {}, "Before"), h("pre", {}, show(entry.before))),
      h("div", {}, h("h3", {}, "After"), h("pre", {}, show(entry.after)))),
  );
}

export async function auditPage(params) {
  const title = h("h1", { tabindex: "-1" }, "Audit log");
  if (!can("admin")) {
    return [title, h("p", {}, "The audit log is for tokens with the admin role.")];
  }
  const query = {
    resource: params.resource || null,
    actor: params.actor || null,
    cursor: params.cursor || null,
  };
  const resource = input("resource", { value: query.resource || "", placeholder: "users/jsmith" });
  const actor = input("actor", { value: query.actor || "", placeholder: "token name" });
  const slot = formError();
  const form = h(
    "form",
    { class: "inline", "aria-label": "Filter the audit log" },
    field("Resource", resource),
    field("Actor", actor),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Filter")),
    slot,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go(withQuery("#/audit", { resource: resource.value.trim(), actor: actor.value.trim() }));
  });
  let list = null;
  let next = null;
  try {
    const { data } = await request("GET", withQuery("/audit", { ...query, limit: PAGE_SIZE }));
    next = data.next_cursor;
    list = table(
      "Changes, newest first",
      ["When", "Actor", "Action", "Resource", "Change"],
      data.items.map((entry) =>
        h(
          "tr",
          {},
          h("td", {}, h("time", { datetime: entry.at }, new Date(entry.at).toLocaleString())),
          h("td", {}, entry.actor),
          h("td", {}, entry.action),
          h("td", {}, resourceLink(entry.resource)),
          h("td", {}, change(entry)),
        ),
      ),
      "No changes match.",
    );
  } catch (problem) {
    if (!(problem instanceof Problem)) throw problem;
    showProblem(form, slot, problem);
  }
  return [title, form, list, pager("#/audit", query, next, "Pages of the audit log")];
}
