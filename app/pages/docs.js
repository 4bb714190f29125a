// The API documentation: Swagger UI from this server's own files, set up here
// rather than inline so that the page's policy can forbid inline scripts.
//
// With tokens required, /openapi.json answers only a reader, and a browser
// cannot send a bearer token when it opens a page. So the page first shows a
// stand-in document that declares the bearer scheme (Swagger UI's Authorize
// button comes from there); the token given to Authorize then fetches the
// real document, and Swagger UI sends it with every "Try it out".

const OPENAPI_URL = "/openapi.json";
const NEEDS_TOKEN =
  "This server requires an API token to read its description. Click **Authorize**," +
  " paste a token (`grouped-users token create --name NAME --role reader` makes one)," +
  " and the operations appear here.";

let ui = null;
let loaded = false;

function standIn(note) {
  return {
    openapi: "3.1.0",
    info: { title: "grouped-users", version: "", description: note },
    paths: {},
    components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
    security: [{ bearer: [] }],
  };
}

async function fetchDocument(token) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  try {
    const response = await fetch(OPENAPI_URL, { headers, cache: "no-store" });
    if (response.ok) return { spec: await response.json() };
    if (response.status === 401 && !token) return { note: NEEDS_TOKEN };
    if (response.status === 401) {
      return { note: "The server refused that token (401). Log out, then Authorize with another." };
    }
    return { note: `The server answered ${response.status} for ${OPENAPI_URL}.` };
  } catch (error) {
    return { note: `The server could not be reached for ${OPENAPI_URL}: ${error.message}` };
  }
}

function show({ spec, note }) {
  loaded = spec !== undefined;
  ui.specActions.updateSpec(JSON.stringify(spec || standIn(note)));
}

// Swagger UI plugin: a token given to Authorize loads the real document if the
// page has not got it yet.
function loadOnAuthorize() {
  const authorize = (original) => (payload) => {
    const result = original(payload);
    const token = payload && payload.bearer && payload.bearer.value;
    if (token && !loaded) fetchDocument(token).then(show);
    return result;
  };
  return { statePlugins: { auth: { wrapActions: { authorize } } } };
}

async function start() {
  const first = await fetchDocument(null);
  ui = SwaggerUIBundle({
    spec: first.spec || standIn(first.note),
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    plugins: [loadOnAuthorize],
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // The default sends the document's address to an online validator.
    validatorUrl: null,
    // The token stays in this tab's memory, never in localStorage.
    persistAuthorization: false,
  });
  loaded = first.spec !== undefined;
}

start();
