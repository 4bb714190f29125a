// The console's only way to the server: the public JSON API, with the token as Bearer.

const TOKEN_KEY = "grouped-users.token";

export const session = {
  token: sessionStorage.getItem(TOKEN_KEY),
  caller: null, // {name, role} from GET /whoami
  onUnauthenticated: null,
};

export function setToken(token) {
  session.token = token || null;
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const ROLES = ["reader", "writer", "admin"];

// Whether the caller's role is at least `role`; the API decides, this only hides controls.
export function can(role) {
  return session.caller !== null && ROLES.indexOf(session.caller.role) >= ROLES.indexOf(role);
}

// An API error: its problem+json body (RFC 9457), whose `detail` is shown to the user.
export class Problem extends Error {
  constructor(status, body) {
    super(body.detail);
    this.status = status;
    this.code = body.code || "";
    this.detail = body.detail;
    this.errors = Array.isArray(body.errors) ? body.errors : [];
  }
}

// "/users/" + encoded segments: names never travel unescaped in a path.
export function path(...segments) {
  return "/" + segments.map((s) => encodeURIComponent(s)).join("/");
}

export function withQuery(base, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") query.set(key, value);
  }
  const text = query.toString();
  return text ? `${base}?${text}` : base;
}

// One request: resolves to {status, data, etag}, or throws a Problem.
export async function request(method, url, { json, mergePatch, ifMatch } = {}) {
  const headers = { Accept: "application/json" };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (mergePatch !== undefined) {
    headers["Content-Type"] = "application/merge-patch+json";
    body = JSON.stringify(mergePatch);
  }
  if (ifMatch) headers["If-Match"] = ifMatch;
  let response;
  try {
    // no-store: an edit must start from the version the server has now.
    response = await fetch(url, { method, headers, body, cache: "no-store" });
  } catch {
    throw new Problem(0, {
      code: "network_error",
      detail: "The server did not answer; check that it is running, then try again.",
    });
  }
  const etag = response.headers.get("ETag");
  const text = response.status === 204 ? "" : await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const problem =
      data && typeof data.detail === "string"
        ? data
        : { code: "http_error", detail: `The server answered ${response.status} ${response.statusText}.` };
    const error = new Problem(response.status, problem);
    if (response.status === 401 && session.onUnauthenticated) session.onUnauthenticated(error);
    throw error;
  }
  return { status: response.status, data, etag };
}
