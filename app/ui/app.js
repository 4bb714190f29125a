// The console: sign-in, the header, and which page a hash route shows.

import { Problem, can, request, session, setToken } from "./api.js";
import { clearErrors, field, formError, h, input, showProblem } from "./dom.js";
import { auditPage } from "./audit.js";
import { groupPage, groupsPage } from "./groups.js";
import { setRenderer } from "./nav.js";
import { userPage, usersPage } from "./users.js";
import { webhooksPage } from "./webhooks.js";

const main = document.getElementById("main");
let ticket = 0;
let shown = null;

async function whoami() {
  const { data } = await request("GET", "/whoami");
  session.caller = data;
}

function header() {
  const signedIn = session.caller !== null;
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("nav-audit").hidden = !can("admin");
  document.getElementById("nav-webhooks").hidden = !can("admin");
  document.getElementById("session").hidden = !signedIn;
  document.getElementById("caller").textContent = signedIn
    ? `${session.caller.name} (${session.caller.role})`
    : "";
  // With auth disabled there is no token, so nothing to sign out of.
  document.getElementById("sign-out").hidden = !session.token;
}

function signInPage(problem) {
  const token = input("token", { type: "password", required: true, autocomplete: "current-password" });
  const slot = formError();
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h(
    "form",
    { class: "card narrow", "aria-labelledby": "signin-title" },
    field("API token", token, "An admin creates one with: grouped-users token create --name you --role writer"),
    h("div", { class: "actions" }, button),
    slot,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    button.disabled = true;
    setToken(token.value.trim());
    try {
      await whoami();
      render();
    } catch (error) {
      setToken(null);
      showProblem(form, slot, error, token);
      token.focus();
    } finally {
      button.disabled = false;
    }
  });
  const page = [h("h1", { id: "signin-title", tabindex: "-1" }, "Sign in"), form];
  if (problem) {
    queueMicrotask(() => showProblem(form, slot, problem, token));
  }
  return page;
}

const ROUTES = [
  [/^\/users$/, (_, params) => usersPage(params)],
  [/^\/users\/([^/]+)$/, (m) => userPage(decodeURIComponent(m[1]))],
  [/^\/groups$/, (_, params) => groupsPage(params)],
  [/^\/groups\/([^/]+)$/, (m, params) => groupPage(decodeURIComponent(m[1]), params)],
  [/^\/audit$/, (_, params) => auditPage(params)],
  [/^\/webhooks$/, () => webhooksPage()],
];

function notFound() {
  return [h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, "No page here. ", h("a", { href: "#/users" }, "Go to the users."))];
}

function mount(nodes, own) {
  if (own !== ticket) return;
  main.replaceChildren(...nodes.filter((node) => node !== null && node !== undefined));
  const title = main.querySelector("h1");
  if (title) document.title = `${title.textContent} · grouped-users`;
  // A new page moves focus to its title; the same page rendered again keeps the place.
  const where = session.caller ? location.hash : "sign-in";
  if (title && where !== shown) title.focus();
  shown = where;
  for (const a of document.querySelectorAll("#nav a")) {
    const current = location.hash.startsWith(`#/${a.dataset.section}`);
    if (current) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

async function render(problem) {
  ticket += 1;
  const own = ticket;
  if (session.caller === null && !problem) {
    try {
      await whoami();
    } catch (error) {
      problem = error.status === 401 ? null : error;
    }
  }
  header();
  if (session.caller === null) {
    mount(signInPage(problem), own);
    return;
  }
  const [route, query] = (location.hash.slice(1) || "/users").split("?");
  const params = Object.fromEntries(new URLSearchParams(query || ""));
  const found = ROUTES.map(([pattern, view]) => [route.match(pattern), view]).find(([m]) => m);
  let nodes;
  try {
    nodes = found ? await found[1](found[0], params) : notFound();
  } catch (error) {
    if (!(error instanceof Problem)) throw error;
    if (error.status === 401) return;
    nodes = [h("h1", { tabindex: "-1" }, "Could not load this page"), h("p", { class: "error" }, error.detail)];
  }
  mount(nodes, own);
}

// A token that stops working (revoked, expired) sends the user back to sign in.
session.onUnauthenticated = (problem) => {
  if (session.caller === null) return;
  setToken(null);
  session.caller = null;
  render(problem);
};

document.getElementById("sign-out").addEventListener("click", () => {
  setToken(null);
  session.caller = null;
  location.hash = "#/users";
  render();
});

setRenderer(() => render());
window.addEventListener("hashchange", () => {
  // Only routes ("#/..."); other fragments are ordinary in-page links.
  if (location.hash === "" || location.hash.startsWith("#/")) render();
});
render();
