// Webhooks (admins): each endpoint with its latest deliveries.

import { Problem, can, path, request } from "./api.js";
import { formError, h, showProblem, table } from "./dom.js";

const SHOWN_DELIVERIES = 5;

function when(moment) {
  return moment ? h("time", { datetime: moment }, new Date(moment).toLocaleString()) : "—";
}

function lastAttempt(delivery) {
  const attempt = delivery.attempts[delivery.attempts.length - 1];
  if (!attempt) return "not tried yet";
  const result = attempt.status_code !== null ? `HTTP ${attempt.status_code}` : attempt.error;
  return `${result} (${attempt.duration_ms} ms, ${delivery.attempts.length} attempt${delivery.attempts.length === 1 ? "" : "s"})`;
}

function deliveries(hook, items) {
  return table(
    `Latest deliveries to ${hook.url}`,
    ["Event", "State", "Last attempt", "Next attempt"],
    items.map((delivery) =>
      h(
        "tr",
        {},
        h("td", {}, h("code", {}, delivery.event_id)),
        h("td", {}, delivery.state),
        h("td", {}, lastAttempt(delivery)),
        h("td", {}, when(delivery.next_attempt_at)),
      ),
    ),
    "No deliveries yet.",
  );
}

async function endpoint(hook) {
  const { data } = await request(
    "GET",
    `${path("webhooks", hook.id)}/deliveries?limit=${SHOWN_DELIVERIES}`,
  );
  const types = hook.types ? hook.types.join(", ") : "every type";
  return h(
    "section",
    { class: "webhook", "aria-label": `Webhook ${hook.id}` },
    h("h2", {}, hook.url),
    h(
      "p",
      { class: "muted" },
      `${hook.id} · ${hook.enabled ? "enabled" : "disabled"} · ${types}`,
      hook.description ? ` · ${hook.description}` : "",
    ),
    deliveries(hook, data),
  );
}

export async function webhooksPage() {
  const title = h("h1", { tabindex: "-1" }, "Webhooks");
  if (!can("admin")) {
    return [title, h("p", {}, "Webhooks are for tokens with the admin role.")];
  }
  const slot = formError();
  const holder = h("div", {}, slot);
  try {
    const { data } = await request("GET", "/webhooks");
    if (data.length === 0) {
      return [title, h("p", {}, "No webhooks yet: POST /webhooks or `grouped-users webhook create` registers one.")];
    }
    return [title, ...(await Promise.all(data.map(endpoint)))];
  } catch (problem) {
    if (!(problem instanceof Problem)) throw problem;
    showProblem(holder, slot, problem);
  }
  return [title, holder];
}
