// Building the page from data without ever parsing data as HTML.

// h("a", {href: "#/x", class: "c", onclick: fn}, "text", childNode, [more])
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (value === true) node.setAttribute(key, "");
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let counter = 0;

// A labelled control with a slot below it for the API's word on it.
export function field(label, control, hint) {
  counter += 1;
  const id = control.id || `f${counter}`;
  control.id = id;
  const error = h("p", { class: "error", id: `${id}-error`, "aria-live": "polite", hidden: true });
  const described = [hint ? `${id}-hint` : null, error.id].filter(Boolean).join(" ");
  control.setAttribute("aria-describedby", described);
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    control,
    hint ? h("p", { class: "hint", id: `${id}-hint` }, hint) : null,
    error,
  );
}

export function input(name, props = {}) {
  return h("input", { name, type: "text", autocomplete: "off", spellcheck: "false", ...props });
}

// A form's own slot for problems that belong to no single field, beside its button.
export function formError() {
  return h("p", { class: "error form-error", "aria-live": "polite", hidden: true });
}

export function clearErrors(root) {
  for (const slot of root.querySelectorAll(".error")) {
    slot.hidden = true;
    slot.textContent = "";
    slot.classList.remove("conflict");
  }
  for (const control of root.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
}

// Show a Problem's detail next to `control` if given, else next to the control its
// `errors[].field` names, else in `slot` (the form's own, beside its button).
export function showProblem(form, slot, problem, control = null) {
  for (const error of control ? [] : problem.errors || []) {
    const name = String(error.field || "").replace(/\[.*$/, "");
    control = form ? form.querySelector(`[name="${CSS.escape(name)}"]`) : null;
    if (control) break;
  }
  let target = slot;
  if (control) {
    target = document.getElementById(`${control.id}-error`) || slot;
    control.setAttribute("aria-invalid", "true");
  }
  target.textContent = problem.detail;
  target.hidden = false;
  return target;
}

// A form in a card: its heading, `body` (fields, lists), then its button and problem slot.
// On submit `send` runs, one press at a time; a problem it throws goes to `fail`, by
// default shown beside the field it names, else in the slot.
export function cardForm({ id, title, button, body, send, fail }) {
  const slot = formError();
  const form = h(
    "form",
    { class: "card", "aria-labelledby": id },
    h("h2", { id }, title),
    ...body,
    h("div", { class: "actions" }, button),
    slot,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    busy(button, true);
    try {
      await send();
    } catch (problem) {
      if (fail) fail(problem, form, slot);
      else showProblem(form, slot, problem);
    } finally {
      busy(button, false);
    }
  });
  return { form, slot };
}

// A button at work cannot be pressed twice.
export function busy(button, running) {
  button.disabled = running;
  button.setAttribute("aria-busy", running ? "true" : "false");
}

export function table(caption, headings, rows, empty) {
  if (rows.length === 0) return h("p", { class: "muted" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, rows),
    ),
  );
}
