// Groups: the list with member counts, creating a group, a group's page (members, delete).

import { Problem, can, path, request, withQuery } from "./api.js";
import { busy, cardForm, field, h, input, showProblem, table } from "./dom.js";
import { confirmButton, flash, go, link, pager } from "./nav.js";

const PAGE_SIZE = 50;
const SUGGESTIONS = 10;

export async function groupsPage(params) {
  const query = { cursor: params.cursor || null };
  const { data } = await request("GET", withQuery("/groups", { ...query, limit: PAGE_SIZE }));
  return [
    h("h1", { tabindex: "-1" }, "Groups"),
    flash(),
    table(
      "Groups",
      ["Group", "Members"],
      data.items.map((group) =>
        h(
          "tr",
          {},
          h("td", {}, link(`#${path("groups", group.name)}`, group.name)),
          h("td", { class: "number" }, String(group.member_count)),
        ),
      ),
      "No groups yet.",
    ),
    pager("#/groups", query, data.next_cursor, "Pages of groups"),
    can("writer") ? createGroupForm() : null,
  ];
}

function createGroupForm() {
  const name = input("name", { required: true, placeholder: "admins" });
  const { form } = cardForm({
    id: "new-group",
    title: "New group",
    button: h("button", { type: "submit" }, "Create group"),
    body: [field("Group name", name)],
    send: async () => {
      const chosen = name.value.trim();
      await request("POST", path("groups", chosen));
      go(`#${path("groups", chosen)}`, `Created group ${chosen}; add its members below.`);
    },
  });
  return form;
}

export async function groupPage(name, params) {
  const query = { cursor: params.cursor || null };
  // The members with their names: GET /users?group= (GET /groups/{name} has userids only).
  const { data } = await request(
    "GET",
    withQuery("/users", { group: name, cursor: query.cursor, limit: PAGE_SIZE }),
  );
  let note = null;
  if (data.items.length === 0 && !query.cursor) {
    // Empty or missing: the API's own sentence says which.
    try {
      await request("GET", path("groups", name));
    } catch (problem) {
      if (!(problem instanceof Problem) || problem.status !== 404) throw problem;
      note = h("p", { class: "muted", id: "group-note" }, problem.detail);
    }
  }
  const writer = can("writer");
  const rows = data.items.map((user) => {
    const cells = [
      h("td", {}, link(`#${path("users", user.userid)}`, user.userid)),
      h("td", {}, `${user.first_name} ${user.last_name}`),
    ];
    if (writer) cells.push(h("td", {}, removeButton(name, user.userid)));
    return h("tr", {}, cells);
  });
  return [
    h("p", { class: "crumbs" }, link("#/groups", "Groups"), " / "),
    h("h1", { tabindex: "-1" }, name),
    flash(),
    h("h2", {}, "Members"),
    note ??
      table("Members", writer ? ["User ID", "Name", "Actions"] : ["User ID", "Name"], rows, "No members."),
    pager(`#${path("groups", name)}`, query, data.next_cursor, "Pages of members"),
    writer ? addMemberForm(name) : null,
    writer
      ? confirmButton({
          label: "Delete group…",
          question: `Delete group ${name}? Its members stay, without this group.`,
          confirmLabel: `Delete ${name}`,
          action: async () => {
            await request("DELETE", path("groups", name));
            go("#/groups", `Deleted group ${name}.`);
          },
        })
      : null,
  ];
}

function removeButton(name, userid) {
  const slot = h("span", { class: "error", "aria-live": "polite", hidden: true });
  const button = h(
    "button",
    { type: "button", class: "small", "aria-label": `Remove ${userid} from ${name}` },
    "Remove",
  );
  button.addEventListener("click", async () => {
    busy(button, true);
    slot.hidden = true;
    try {
      await request("DELETE", path("groups", name, "members", userid));
      go(`#${path("groups", name)}`, `Removed ${userid} from ${name}.`);
    } catch (problem) {
      slot.textContent = problem.detail;
      slot.hidden = false;
    } finally {
      busy(button, false);
    }
  });
  return h("span", { class: "row-action" }, button, slot);
}

function addMemberForm(name) {
  const options = h("datalist", { id: "member-suggestions" });
  const userid = input("userid", { required: true, list: options.id, placeholder: "type a userid or name" });
  const { form, slot } = cardForm({
    id: "add-member",
    title: "Add a member",
    button: h("button", { type: "submit" }, "Add member"),
    body: [field("User ID", userid, "Suggestions come from the users whose id or name contains what you type."), options],
    send: async () => {
      const chosen = userid.value.trim();
      await request("PUT", path("groups", name, "members", chosen));
      go(`#${path("groups", name)}`, `Added ${chosen} to ${name}.`);
    },
    // The field is the one that caused it, whatever the API calls it.
    fail: (problem, form, slot) => showProblem(form, slot, problem, userid),
  });
  let timer = null;
  let asked = 0;
  userid.addEventListener("input", () => {
    clearTimeout(timer);
    const typed = userid.value.trim();
    if (!typed) return;
    timer = setTimeout(async () => {
      asked += 1;
      const mine = asked;
      try {
        const { data } = await request("GET", withQuery("/users", { q: typed, limit: SUGGESTIONS }));
        if (mine !== asked) return;
        options.replaceChildren(
          ...data.items.map((user) => h("option", { value: user.userid }, `${user.first_name} ${user.last_name}`)),
        );
      } catch (problem) {
        if (problem instanceof Problem) showProblem(form, slot, problem, userid);
      }
    }, 150);
  });
  return form;
}
