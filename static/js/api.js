// The relay's HTTP API: where it is, the caller's credential (a signed-in user's token, or the
// function key), health, the chat request, and the conversations kept for the user.
import { accessToken } from "./auth.js";
import { traceparent } from "./trace.js";

const KEY_STORAGE = "functionKey";

/**
 * config.json: {apiBase, auth}. apiBase is the API's base URL ("https://APP.azurewebsites.net/api"; same
 * origin by default); auth, when the API wants signed-in users, is what MSAL needs ({clientId, authority, scope}).
 */
export async function loadConfig() {
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (response.ok) {
      const { apiBase, auth } = await response.json();
      const base = typeof apiBase === "string" && apiBase ? apiBase.replace(/\/+$/, "") : "/api";
      return { apiBase: base, auth: auth ?? null };
    }
  } catch {
    // An unreadable config.json: the API is on this origin.
  }
  return { apiBase: "/api", auth: null };
}

export function functionKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function saveFunctionKey(key) {
  if (key) sessionStorage.setItem(KEY_STORAGE, key);
  else sessionStorage.removeItem(KEY_STORAGE);
}

/** GET /api/health: {status, upstream, model, resumable, stores_responses, conversations, limits}, or null when unreachable. */
export async function health(apiBase) {
  try {
    const response = await fetch(`${apiBase}/health`, { cache: "no-store" });
    return response.ok ? await response.json() : null;
  } catch {
    return null;
  }
}

/**
 * POST a chat body ({input, previous_response_id?}) in trace `traceId` (the question's); resolves to the
 * Response (the caller reads its body as a stream).
 */
export async function postChat(apiBase, body, signal, traceId) {
  const headers = await authorized({ "Content-Type": "application/json", Accept: "text/event-stream" }, traceId);
  return fetch(`${apiBase}/chat`, { method: "POST", headers, body: JSON.stringify(body), signal, cache: "no-store" });
}

/** GET the stream of a stored response after event id `after` (null: from its start); resolves to the Response. */
export async function resumeChat(apiBase, responseId, after, signal, traceId) {
  const query = after === null ? "" : `?after=${encodeURIComponent(after)}`;
  const url = `${apiBase}/chat/${encodeURIComponent(responseId)}${query}`;
  const headers = await authorized({ Accept: "text/event-stream" }, traceId);
  return fetch(url, { headers, signal, cache: "no-store" });
}

/** Ask the server to stop generating a response (it may not hear of an aborted fetch); errors are ignored. */
export async function cancelChat(apiBase, responseId, traceId) {
  const url = `${apiBase}/chat/${encodeURIComponent(responseId)}/cancel`;
  try {
    await fetch(url, { method: "POST", headers: await authorized({}, traceId), cache: "no-store" });
  } catch {
    // the page may be offline: the answer is marked as stopped all the same
  }
}

/** GET a page of the user's conversations (`after`: the previous page's `next`); resolves to the Response. */
export async function listConversations(apiBase, after = null) {
  const query = after === null ? "" : `?after=${encodeURIComponent(after)}`;
  return fetch(`${apiBase}/conversations${query}`, { headers: await authorized({}), cache: "no-store" });
}

/** POST a new, empty conversation; resolves to the Response (201 {id, title, created_at, updated_at}). */
export async function createConversation(apiBase, signal) {
  return fetch(`${apiBase}/conversations`, { method: "POST", headers: await authorized({}), signal, cache: "no-store" });
}

/** GET a conversation with its messages; resolves to the Response. */
export async function getConversation(apiBase, id, signal) {
  const url = `${apiBase}/conversations/${encodeURIComponent(id)}`;
  return fetch(url, { headers: await authorized({}), signal, cache: "no-store" });
}

/** PATCH a conversation's title; resolves to the Response. */
export async function renameConversation(apiBase, id, title) {
  const headers = await authorized({ "Content-Type": "application/json" });
  const url = `${apiBase}/conversations/${encodeURIComponent(id)}`;
  return fetch(url, { method: "PATCH", headers, body: JSON.stringify({ title }), cache: "no-store" });
}

/** DELETE a conversation for good; resolves to the Response (204). */
export async function deleteConversation(apiBase, id) {
  const url = `${apiBase}/conversations/${encodeURIComponent(id)}`;
  return fetch(url, { method: "DELETE", headers: await authorized({}), cache: "no-store" });
}

/** POST /api/feedback {response_id, rating, comment}; resolves to {ok, code} (code: why not, or null). */
export async function postFeedback(apiBase, body) {
  try {
    const headers = await authorized({ "Content-Type": "application/json" });
    const response = await fetch(`${apiBase}/feedback`, { method: "POST", headers, body: JSON.stringify(body), cache: "no-store" });
    return response.ok ? { ok: true, code: null } : { ok: false, code: (await errorOf(response)).code };
  } catch {
    return { ok: false, code: "network" };
  }
}

/**
 * `headers` with the question's trace context (a request about an answer: in trace `traceId`) and the
 * caller's credential: the signed-in user's access token, or else the function key when one is saved;
 * a header, never the URL (URLs end up in logs).
 */
async function authorized(headers, traceId = null) {
  const traced = traceId ? { ...headers, traceparent: traceparent(traceId) } : headers;
  const token = await accessToken();
  if (token) return { ...traced, Authorization: `Bearer ${token}` };
  const key = functionKey();
  return key ? { ...traced, "x-functions-key": key } : traced;
}

/**
 * The {code, message, retryAfter} of an error answered before the stream; retryAfter is
 * the seconds to wait from a Retry-After header (readable cross-origin only when exposed), or null.
 */
export async function errorOf(response) {
  const retryAfter = retryAfterSeconds(response.headers.get("Retry-After"), Date.now());
  try {
    const { error } = await response.json();
    // The body says it too: a page on another origin may not be allowed to read the header.
    const said = Number.isSafeInteger(error?.retry_after) && error.retry_after >= 0 ? error.retry_after : null;
    if (error?.code) return { code: error.code, message: error.message ?? "", retryAfter: retryAfter ?? said };
  } catch {
    // not JSON: fall through
  }
  return { code: `http_${response.status}`, message: response.statusText || "HTTP error", retryAfter };
}

/** Seconds until a Retry-After value (delay-seconds or an HTTP date) has passed, at `now` (ms); null without one. */
export function retryAfterSeconds(value, now) {
  if (!value) return null;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text);
  const at = Date.parse(text);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}
