// Users: the searchable list, creating a user, a user's page (edit, delete).

import { Problem, can, path, request, withQuery } from "./api.js";
import { cardForm, field, formError, h, input, showProblem, table } from "./dom.js";
import { confirmButton, flash, go, link, pager } from "./nav.js";

const PAGE_SIZE = 25;

export async function usersPage(params) {
  const query = { q: params.q || null, cursor: params.cursor || null };
  const search = input("q", { type: "search", value: query.q || "", placeholder: "userid or name" });
  const searchSlot = formError();
  const searchForm = h(
    "form",
    { class: "inline", role: "search" },
    field("Search users", search),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Search")),
    searchSlot,
  );
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    go(withQuery("#/users", { q: search.value.trim() }));
  });

  let list;
  let next = null;
  try {
    const { data } = await request("GET", withQuery("/users", { ...query, limit: PAGE_SIZE }));
    next = data.next_cursor;
    list = table(
      "Users",
      ["User ID", "Name", "Groups"],
      data.items.map((user) =>
        h(
          "tr",
          {},
          h("td", {}, link(`#${path("users", user.userid)}`, user.userid)),
          h("td", {}, `${user.first_name} ${user.last_name}`),
          h("td", {}, user.groups.join(", ") || h("span", { class: "muted" }, "none")),
        ),
      ),
      query.q ? `No user matches “${query.q}”.` : "No users yet.",
    );
  } catch (problem) {
    if (!(problem instanceof Problem)) throw problem;
    list = null;
    showProblem(searchForm, searchSlot, problem);
  }
  return [
    h("h1", { tabindex: "-1" }, "Users"),
    flash(),
    searchForm,
    list,
    pager("#/users", query, next, "Pages of users"),
    can("writer") ? createUserForm() : null,
  ];
}

function createUserForm() {
  const userid = input("userid", { required: true, placeholder: "jsmith" });
  const first = input("first_name", { required: true, autocomplete: "off" });
  const last = input("last_name", { required: true, autocomplete: "off" });
  const { form } = cardForm({
    id: "new-user",
    title: "New user",
    button: h("button", { type: "submit" }, "Create user"),
    body: [h("div", { class: "grid" }, field("User ID", userid), field("First name", first), field("Last name", last))],
    send: async () => {
      const id = userid.value.trim();
      await request("POST", path("users", id), {
        json: { first_name: first.value, last_name: last.value },
      });
      go(`#${path("users", id)}`, `Created user ${id}.`);
    },
  });
  return form;
}

export async function userPage(userid) {
  const { data: user, etag } = await request("GET", path("users", userid));
  const groups = user.groups.length
    ? h("ul", { class: "chips" }, user.groups.map((name) => h("li", {}, link(`#${path("groups", name)}`, name))))
    : h("span", { class: "muted" }, "in no group");
  return [
    h("p", { class: "crumbs" }, link("#/users", "Users"), " / "),
    h("h1", { tabindex: "-1" }, user.userid),
    flash(),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "First name"),
      h("dd", { id: "user-first-name" }, user.first_name),
      h("dt", {}, "Last name"),
      h("dd", { id: "user-last-name" }, user.last_name),
      h("dt", {}, "Groups"),
      h("dd", { id: "user-groups" }, groups),
    ),
    can("writer") ? editUserForm(user, etag) : null,
    can("writer")
      ? confirmButton({
          label: "Delete user…",
          question: `Delete ${user.userid} and all their memberships? This cannot be undone.`,
          confirmLabel: `Delete ${user.userid}`,
          action: async () => {
            await request("DELETE", path("users", user.userid), { ifMatch: etag });
            go("#/users", `Deleted user ${user.userid}.`);
          },
        })
      : null,
  ];
}

function editUserForm(user, etag) {
  const first = input("first_name", { required: true, value: user.first_name });
  const last = input("last_name", { required: true, value: user.last_name });
  const { form } = cardForm({
    id: "edit-user",
    title: "Edit",
    button: h("button", { type: "submit" }, "Save changes"),
    body: [h("div", { class: "grid" }, field("First name", first), field("Last name", last))],
    send: async () => {
      const patch = {};
      if (first.value !== user.first_name) patch.first_name = first.value;
      if (last.value !== user.last_name) patch.last_name = last.value;
      // If-Match: the change applies only to the version shown, never over another's edit.
      await request("PATCH", path("users", user.userid), { mergePatch: patch, ifMatch: etag });
      go(`#${path("users", user.userid)}`, "Saved.");
    },
    fail: (problem, form, slot) => {
      if (problem.status === 412) {
        const reload = h("button", { type: "button", onclick: () => go(`#${path("users", user.userid)}`) }, "Reload");
        slot.replaceChildren(
          h("strong", {}, "This user was changed by someone else since you opened it; your edit was not saved. Reload to see the current version, then edit again."),
          " ",
          reload,
          h("span", { class: "detail" }, ` (${problem.detail})`),
        );
        slot.classList.add("conflict");
        slot.hidden = false;
        reload.focus();
      } else {
        showProblem(form, slot, problem);
      }
    },
  });
  return form;
}
