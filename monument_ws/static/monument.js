// @ts-check
/**
 * monument.js — the browser client of monument_ws (wire protocol version 1).
 *
 * A dependency-free ES module: no build step, served by the plugin at
 * `/monument_ws/client.js` (config key `client_path`). It has the same API as
 * the Python client (`monument_ws.client.Client`):
 *
 *     import { Client } from "/monument_ws/client.js";
 *
 *     const client = new Client("/ws");               // relative to the page; ws: or wss: follows it
 *     client.on("ws:state", ({ state }) => console.log(state));
 *     console.log(await client.call("data:get:greeting"));
 *     client.tell("log", { level: "info" });          // no reply; kept in the outbox while offline
 *     for await (const n of client.stream("countdown", 3)) console.log(n);
 *     client.perform("ask-name", () => "Ada");        // answer the server's calls
 *     const chat = await client.subscribe("chat", (m) => console.log(m.data), { label: "Ada" });
 *
 * Guarantees (the same as the Python client's):
 * - Replies: exactly one settlement per call — its data, the server's typed
 *   error, `Timeout`, or `ConnectionLost` when the socket drops after the call
 *   was sent (unless `retry: true`: then it is sent again after reconnecting,
 *   and the server may run it twice).
 * - Outbox: every outgoing frame goes through one ordered outbox of at most
 *   `outboxLimit` frames; while offline, tells and calls wait there (calls
 *   within their own timeout) and are sent in order after the welcome. A full
 *   outbox throws `QueueFull` at once; nothing already in it is dropped. Tells
 *   written just before a drop are at most once.
 * - Channels: a subscription's handler sees each publication once, in offset
 *   order; after a reconnect the client resubscribes with `since` (offset and
 *   epoch), missed publications are replayed, and `recovered` says whether
 *   none were lost.
 * - User and session channels: a socket whose session has a user (or a session id) is
 *   subscribed by the server to its `$user:` and `$session:` channels; `onUser(handler)` and
 *   `onSession(handler)` get their publications like a subscription's handler, and after a
 *   reconnect what was published meanwhile is recovered (with `since`) when the welcome's
 *   offset is past the last one received, the live ones held until then.
 * - Presence: `subscribe(channel, handler, { label, meta })` describes this client in the
 *   channel's member list, `presence(channel)` reads a page of it, and
 *   `subscription.on("member", fn)` sees each member's transition (connected, disconnected,
 *   reconnected, removed) in namespaces with `presence_events`.
 * - Frame middleware: `outgoing(hook)` sees every frame before it enters the outbox (what it
 *   throws is thrown by the tell or call that sent it), `incoming(hook)` every frame
 *   after the welcome before dispatch (a refusal answers or fails whatever waited for
 *   the frame), `listen(fn)` every frame first, even text that is not JSON.
 * - Peer queue: `enqueue(data)` resolves once the message is stored for the server's
 *   `socket.consume()`; messages the server queued for this client wait in a local
 *   inbox (bounded by `peerQueueSize` and `peerQueueTtl`) for `consume(filter)`, each
 *   at most once (after a reconnect the client says with `queued=` which it already has).
 * - Reconnect: exponential backoff with full jitter
 *   (`random() * min(backoffMax, backoffInitial * 2 ** attempt)`), following the
 * * close-code table of the protocol (no reconnect after 1000, 1002, 1007, 1008, 4401,
 *   4403, 4409; 4029 waits `longDelay` more; after 1009 the offending frame is
 *   not sent again). The `resume` secret keeps the `client_id`. `retryInterval` replaces
 *   the backoff by a fixed wait; `maxRetries` attempts in a row close the client for good.
 * - Staged auth: `auth(stage, payload)` runs one `ws:auth` stage; `stage` is the stage the
 *   server reports (welcome, then each answer) and `ws:stage` says when it changes; a refused
 *   stage rejects with `AuthFailed`. A reconnect starts again from the welcome's stage.
 * - Extra keys: `tell(event, data, {extra})` and `call(..., {extra})` add top-level keys
 *   for the server's passthrough receivers; `RESERVED_KEYS` are refused with a TypeError.
 * - Several servers: `new Client([urlA, urlB])` connects to the first URL and, after
 *   each drop or failed attempt it will retry, tries the next one in turn (`url` is
 *   the one in use), so a page moves to another process when one drains (1001).
 *
 * Renamed: the old names `queueLimit`, `queueSize`, `queueTtl` (options and properties),
 * `queueDropped` and `queued` still work until 1.0; the first use of each on a page logs a
 * `console.warn` with its new name.
 *
 * @module monument
 */

/** The monument_ws release this file belongs to (the plugin serves it with this version). */
export const VERSION = "0.1.0";
export const PROTOCOL_VERSION = 1;
export const SUBPROTOCOL = "monument.v1";

// --- errors -----------------------------------------------------------------

/**
 * Root of every monument_ws error; `code` is the protocol error code.
 * `remote` is true when the error came from the server in an error frame.
 */
export class MonumentError extends Error {
  /** @type {string} */
  static code = "internal";

  /**
   * @param {string} [message]
   * @param {{ data?: unknown, remote?: boolean, code?: string }} [options] `code` overrides the
   *   class's (bad_json and missing_event are BadFrame errors that keep their own code)
   */
  constructor(message, options = {}) {
    const code = options.code ?? /** @type {typeof MonumentError} */ (new.target).code;
    super(message || code.replace(/_/g, " "));
    this.name = new.target.name;
    /** @type {string} */
    this.code = code;
    /** @type {boolean} */
    this.remote = options.remote ?? false;
    /** @type {unknown} */
    this.data = options.data;
  }
}
export class BadFrame extends MonumentError { static code = "bad_frame"; }
export class DuplicateId extends MonumentError { static code = "duplicate_id"; }
export class NotFound extends MonumentError { static code = "not_found"; }
export class Unauthorized extends MonumentError { static code = "unauthorized"; }
/**
 * The server refused a stage of staged auth: what `auth(stage, payload)` rejects with for an
 * `unauthorized` answer (`name` "AuthFailed", `code` "unauthorized"). `stage` is the stage
 * that was tried; the client's `stage` did not change.
 */
export class AuthFailed extends Unauthorized {
  /**
   * @param {string} [message]
   * @param {{ data?: unknown, remote?: boolean, code?: string, stage?: string }} [options]
   */
  constructor(message, options = {}) {
    super(message, options);
    /** @type {string} */
    this.stage = options.stage ?? "";
  }
}
export class Forbidden extends MonumentError { static code = "forbidden"; }
export class TooLarge extends MonumentError { static code = "too_large"; }
export class RateLimited extends MonumentError { static code = "rate_limited"; }
/** The outbox is full; nothing already in it was dropped. (The name predates the outbox's.) */
export class QueueFull extends RateLimited {}
export class Timeout extends MonumentError { static code = "timeout"; }
export class Unavailable extends MonumentError { static code = "unavailable"; }
/** The socket closed (or the client was closed) before the answer came. */
export class ConnectionLost extends Unavailable {}
export class Cancelled extends MonumentError { static code = "cancelled"; }
export class InternalError extends MonumentError { static code = "internal"; }

/** @type {Record<string, typeof MonumentError>} */
const ERRORS_BY_CODE = {
  bad_json: BadFrame,
  bad_frame: BadFrame,
  missing_event: BadFrame,
  duplicate_id: DuplicateId,
  not_found: NotFound,
  unauthorized: Unauthorized,
  forbidden: Forbidden,
  too_large: TooLarge,
  rate_limited: RateLimited,
  timeout: Timeout,
  unavailable: Unavailable,
  cancelled: Cancelled,
  internal: InternalError,
};

/**
 * Rebuild the typed error of an error frame's `error` object (`remote` set).
 * Unknown or malformed codes become `InternalError`: reading a server's error never fails.
 * @param {unknown} error
 * @returns {MonumentError}
 */
export function fromErrorFrame(error) {
  if (!isObject(error)) return new InternalError("malformed error frame", { remote: true });
  const code = typeof error.code === "string" ? error.code : "";
  const known = Object.hasOwn(ERRORS_BY_CODE, code);
  const Cls = known ? ERRORS_BY_CODE[code] : InternalError;
  const message = typeof error.message === "string" ? error.message : "";
  return new Cls(message, { remote: true, data: error.data, code: known ? code : "internal" });
}

// --- extra top-level keys (pure) ----------------------------------------------

/**
 * Top-level keys protocol version 1 gives a meaning in some frame (the Python
 * `protocol.RESERVED_KEYS`); a call's or a tell's `extra` keys may use any other name.
 */
export const RESERVED_KEYS = Object.freeze([
  "event", "id", "data", "call", "error", "channel", "offset", "more", "end", "sync", "seq",
]);

/**
 * The frame of a tell, or of a call with `id`: `event`, `data` and the `extra` top-level
 * keys, which a server hands to passthrough receivers as part of the message (monument's
 * `{"event": "authorize", "credentialsObj": {...}}`). Throws TypeError for `extra` that is
 * not a plain object or that uses a reserved key, before anything enters the outbox.
 * @param {string} event @param {unknown} data @param {Record<string, unknown>} [extra]
 * @param {number} [id]
 * @returns {Record<string, unknown>}
 */
export function frameOf(event, data, extra, id) {
  /** @type {Record<string, unknown>} */
  const frame = id === undefined ? { event, data: data ?? null } : { event, id, data: data ?? null };
  if (extra === undefined || extra === null) return frame;
  if (!isObject(extra) || Array.isArray(extra)) throw new TypeError("extra keys must be a plain object");
  for (const key of Object.keys(extra)) {
    if (RESERVED_KEYS.includes(key)) {
      throw new TypeError(`${JSON.stringify(key)} is a key the protocol reserves; extra keys may not use it`);
    }
  }
  return { ...frame, ...extra };
}

// --- close codes and backoff (pure) -------------------------------------------

/** Close codes of the protocol. */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  ABNORMAL: 1006,
  INVALID_DATA: 1007,
  POLICY: 1008,
  TOO_BIG: 1009,
  INTERNAL: 1011,
  SLOW_CONSUMER: 4008,
  RATE_LIMITED: 4029,
  UNAUTHORIZED: 4401,
  FORBIDDEN: 4403,
  KICKED: 4409,
});

/**
 * @typedef {"never" | "jitter" | "backoff" | "drop_message" | "recover" | "long_delay"} ReconnectPolicy
 */

/** @type {Record<number, ReconnectPolicy>} */
const POLICIES = {
  1000: "never",
  1001: "jitter",
  1002: "never",
  1003: "never",
  1006: "backoff",
  1007: "never",
  1008: "never",
  1009: "drop_message",
  1011: "backoff",
  4008: "recover",
  4029: "long_delay",
  4401: "never",
  4403: "never",
  4409: "never",
};

/**
 * What the client does after a close with `code` (the close-code table of docs/protocol.md).
 * Codes outside the table (e.g. a proxy's 1012) reconnect with backoff.
 * @param {number | null | undefined} code
 * @returns {ReconnectPolicy}
 */
export function reconnectPolicy(code) {
  return (code != null && POLICIES[code]) || "backoff";
}

/**
 * Seconds to wait before reconnect attempt number `attempt` (0 first):
 * full jitter, `random() * min(max, initial * 2 ** attempt)`, plus `longDelay`
 * after a 4029 (rate limited).
 * @param {number} attempt
 * @param {{ initial: number, max: number, longDelay?: number, policy?: ReconnectPolicy, random?: () => number }} options
 * @returns {number}
 */
export function backoffDelay(attempt, { initial, max, longDelay = 0, policy = "backoff", random = Math.random }) {
  const ceiling = Math.min(max, initial * 2 ** Math.min(attempt, 52));
  return random() * ceiling + (policy === "long_delay" ? longDelay : 0);
}

// --- JSON Patch (RFC 6902; the operations jsonpatch emits) ------------------------

/**
 * The tokens of an RFC 6901 JSON Pointer ("" is the whole document).
 * @param {string} pointer
 * @returns {string[]}
 */
export function parsePointer(pointer) {
  if (pointer === "") return [];
  if (typeof pointer !== "string" || !pointer.startsWith("/")) {
    throw new PatchError(`bad JSON pointer ${JSON.stringify(pointer)}`);
  }
  return pointer.slice(1).split("/").map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
}

/** A JSON Patch could not be applied (a failed `test`, a missing path, a bad operation). */
export class PatchError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = "PatchError";
  }
}

/**
 * Apply an RFC 6902 JSON Patch (add, remove, replace, move, copy, test) and
 * return the new document. `doc` is never modified: a patch that fails
 * half-way leaves the caller's object as it was.
 * @param {unknown} doc
 * @param {ReadonlyArray<PatchOperation>} ops
 * @returns {any}
 */
export function applyPatch(doc, ops) {
  if (!Array.isArray(ops)) throw new PatchError("a JSON Patch is an array of operations");
  /** @type {{ root: unknown }} */
  const box = { root: structuredClone(doc) };
  for (const op of ops) {
    if (!isObject(op) || typeof op.path !== "string") throw new PatchError("bad operation");
    const path = parsePointer(op.path);
    switch (op.op) {
      case "add":
        put(box, path, structuredClone(need(op, "value")), "add");
        break;
      case "remove":
        take(box, path);
        break;
      case "replace":
        put(box, path, structuredClone(need(op, "value")), "replace");
        break;
      case "move": {
        const from = parsePointer(String(need(op, "from")));
        if (path.length > from.length && from.every((t, i) => t === path[i])) {
          throw new PatchError(`cannot move ${op.from} into its own child ${op.path}`);
        }
        put(box, path, take(box, from), "add");
        break;
      }
      case "copy":
        put(box, path, structuredClone(get(box, parsePointer(String(need(op, "from"))))), "add");
        break;
      case "test":
        if (!deepEqual(get(box, path), need(op, "value"))) {
          throw new PatchError(`test failed at ${JSON.stringify(op.path)}`);
        }
        break;
      default:
        throw new PatchError(`unknown operation ${JSON.stringify(op.op)}`);
    }
  }
  return box.root;
}

/**
 * @typedef {{ op: "add" | "remove" | "replace" | "move" | "copy" | "test", path: string, value?: unknown, from?: string }} PatchOperation
 */

/** @param {Record<string, unknown>} op @param {string} key */
function need(op, key) {
  if (!Object.hasOwn(op, key)) throw new PatchError(`operation ${op.op} needs '${key}'`);
  return op[key];
}

/** @param {{ root: unknown }} box @param {string[]} path */
function get(box, path) {
  let node = box.root;
  for (const token of path) {
    if (Array.isArray(node)) node = node[arrayIndex(node, token, false)];
    else if (isObject(node) && Object.hasOwn(node, token)) node = node[token];
    else throw new PatchError(`no value at /${path.join("/")}`);
  }
  return node;
}

/** @param {{ root: unknown }} box @param {string[]} path */
function parentOf(box, path) {
  const parent = get(box, path.slice(0, -1));
  if (!Array.isArray(parent) && !isObject(parent)) {
    throw new PatchError(`/${path.slice(0, -1).join("/")} is not a container`);
  }
  return parent;
}

/**
 * @param {{ root: unknown }} box @param {string[]} path @param {unknown} value
 * @param {"add" | "replace"} mode
 */
function put(box, path, value, mode) {
  if (path.length === 0) {
    box.root = value;
    return;
  }
  const parent = parentOf(box, path);
  const token = path[path.length - 1];
  if (Array.isArray(parent)) {
    if (mode === "add") {
      parent.splice(token === "-" ? parent.length : arrayIndex(parent, token, true), 0, value);
    } else {
      parent[arrayIndex(parent, token, false)] = value;
    }
  } else {
    if (mode === "replace" && !Object.hasOwn(parent, token)) {
      throw new PatchError(`no value to replace at /${path.join("/")}`);
    }
    /** @type {Record<string, unknown>} */ (parent)[token] = value;
  }
}

/** @param {{ root: unknown }} box @param {string[]} path */
function take(box, path) {
  if (path.length === 0) {
    const value = box.root;
    box.root = null;
    return value;
  }
  const parent = parentOf(box, path);
  const token = path[path.length - 1];
  if (Array.isArray(parent)) return parent.splice(arrayIndex(parent, token, false), 1)[0];
  if (!Object.hasOwn(parent, token)) throw new PatchError(`no value to remove at /${path.join("/")}`);
  const value = /** @type {Record<string, unknown>} */ (parent)[token];
  delete (/** @type {Record<string, unknown>} */ (parent)[token]);
  return value;
}

/** @param {unknown[]} array @param {string} token @param {boolean} inserting */
function arrayIndex(array, token, inserting) {
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw new PatchError(`bad array index ${JSON.stringify(token)}`);
  const index = Number(token);
  if (index > array.length || (!inserting && index === array.length)) {
    throw new PatchError(`array index ${index} out of range`);
  }
  return index;
}

/**
 * JSON equality (objects by keys, arrays by order).
 * @param {unknown} a @param {unknown} b
 * @returns {boolean}
 */
export function deepEqual(a, b) {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => deepEqual(x, b[i]));
  }
  if (isObject(a) && isObject(b) && !Array.isArray(b)) {
    const keys = Object.keys(a);
    return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && deepEqual(a[k], b[k]));
  }
  return false;
}

/**
 * The object after a SYNC frame: `mode` "full" replaces it, "patch" applies `data` to `current`.
 * @param {unknown} current @param {unknown} mode @param {unknown} data
 */
export function applySync(current, mode, data) {
  if (mode === "full") return data;
  if (mode === "patch") return applyPatch(current, /** @type {PatchOperation[]} */ (data));
  throw new PatchError(`unknown sync mode ${JSON.stringify(mode)}`);
}

// --- frames (pure) ----------------------------------------------------------------

/**
 * What a server frame is, for dispatch. Pure: it looks only at the frame. The
 * rules, in order (tests/vectors/frames.json checks them, for this client and
 * the Python one): not an object with a string `event` → `"invalid"` (ignored);
 * ws:welcome → `"welcome"`; ws:error → `"error"`; a `call` key → `"call"` (the
 * server calls the client); `channel` and an integer `offset` ≥ 0 →
 * `"publication"`; a valid `id` with `more: true` → `"chunk"`, with `end: true`
 * → `"end"`, otherwise → `"reply"`; anything else → `"push"`. SYNC (`sync`)
 * and a plug's `type` are orthogonal to the kind.
 *
 * @param {unknown} frame
 * @returns {"invalid" | "welcome" | "error" | "call" | "publication" | "chunk" | "end" | "reply" | "push"}
 */
export function classify(frame) {
  if (!isObject(frame) || Array.isArray(frame) || typeof frame.event !== "string") return "invalid";
  if (frame.event === "ws:welcome") return "welcome";
  if (frame.event === "ws:error") return "error";
  if ("call" in frame) return "call";
  if ("channel" in frame && Number.isInteger(frame.offset) && frame.offset >= 0) return "publication";
  if (isRequestId(frame.id)) {
    if (frame.more === true) return "chunk";
    if (frame.end === true) return "end";
    return "reply";
  }
  return "push";
}

/**
 * Whether `value` is a valid request id: an integer 0..2^53−1 or a string of 1..64 characters.
 * @param {unknown} value
 * @returns {value is number | string}
 */
export function isRequestId(value) {
  if (typeof value === "number") return Number.isSafeInteger(value) && value >= 0;
  return typeof value === "string" && value.length >= 1 && value.length <= 64;
}

/**
 * Parse one text frame from the server; null when it is not a JSON object.
 * @param {string} text
 * @returns {Record<string, any> | null}
 */
export function decodeFrame(text) {
  let frame;
  try {
    frame = JSON.parse(text);
  } catch {
    return null;
  }
  return isObject(frame) && !Array.isArray(frame) ? frame : null;
}

/**
 * The URL to open: `url` resolved against the page (http → ws, https → wss),
 * with `resume=<secret>` when reconnecting.
 * @param {string | URL} url @param {string | null} [resume] @param {string} [base]
 */
export function socketUrl(url, resume, base = globalThis.location?.href) {
  const target = new URL(url, base);
  if (target.protocol === "http:") target.protocol = "ws:";
  else if (target.protocol === "https:") target.protocol = "wss:";
  if (resume) target.searchParams.set("resume", resume);
  return target.toString();
}

/** @param {unknown} value @returns {value is Record<string, any>} */
function isObject(value) {
  return typeof value === "object" && value !== null;
}

/**
 * The frame after one hook: its replacement, or the frame itself when it returned nothing.
 * @param {FrameHook} hook @param {Record<string, any>} frame
 * @returns {Record<string, any>}
 */
function hooked(hook, frame) {
  const result = hook(frame);
  if (result === null || result === undefined) return frame;
  if (!isObject(result) || Array.isArray(result)) {
    throw new TypeError("a frame hook must return an object, null or undefined");
  }
  return result;
}

/** The old names of options and properties, each with its new one; they go in 1.0. */
const RENAMED = Object.freeze({
  queueLimit: "outboxLimit",
  queueSize: "peerQueueSize",
  queueTtl: "peerQueueTtl",
  queueDropped: "peerQueueDropped",
  queued: "outboxLength",
});

/** @type {Set<string>} the old names a warning was logged for: one each per page */
const warnedRenamed = new Set();

/** @param {keyof typeof RENAMED} old */
function warnRenamed(old) {
  if (warnedRenamed.has(old)) return;
  warnedRenamed.add(old);
  console.warn(`monument_ws: ${old} is deprecated and will be removed in 1.0; use ${RENAMED[old]}`);
}

/**
 * The value of an option under its old name (warning about the name), or undefined.
 * @param {ClientOptions} options @param {"queueLimit" | "queueSize" | "queueTtl"} old
 */
function renamedOption(options, old) {
  const value = options[old];
  if (value !== undefined) warnRenamed(old);
  return value;
}

/** @template T @param {T[]} array @param {T} item */
function removeFrom(array, item) {
  const index = array.indexOf(item);
  if (index >= 0) array.splice(index, 1);
}

// --- the client ---------------------------------------------------------------------

/**
 * @typedef {object} ClientOptions
 * @property {boolean} [reconnect=true] reconnect by itself after a drop (as the close code allows)
 * @property {number} [backoffInitial=0.25] seconds; the first backoff ceiling
 * @property {number} [backoffMax=30] seconds; the largest backoff ceiling
 * @property {number} [longDelay=15] seconds added after a 4029 (rate limited) close
 * @property {number} [maxRetries=Infinity] reconnect attempts in a row before giving up (closed with the
 *   last attempt's code, e.g. 1006, and the reason "no connection after N retries")
 * @property {number | null} [retryInterval=null] seconds every reconnect attempt waits instead of the
 *   backoff (null: the backoff; 4029 still adds `longDelay`)
 * @property {number} [outboxLimit=1000] frames the outbox holds (those not yet sent)
 * @property {number} [callTimeout=60] default seconds a call waits (0: forever)
 * @property {boolean} [heartbeat=true] send ws:heartbeat every `heartbeat` seconds of the welcome, and
 *   treat a heartbeat unanswered for that long as a dead connection
 * @property {boolean} [connect=true] open at once (false: wait for `connect()`)
 * @property {typeof WebSocket} [WebSocket] the WebSocket class (tests inject a fake one)
 * @property {number} [peerQueueSize=100] peer-queue messages kept for `consume()` (the oldest is dropped first)
 * @property {number} [peerQueueTtl=120] seconds a peer-queue message waits for `consume()`
 * @property {() => number} [clock] seconds of a monotonic clock, for `peerQueueTtl` (tests inject one)
 * @property {() => number} [random] random numbers in [0, 1) for the jitter (tests inject one)
 * @property {(fn: () => void, ms: number) => unknown} [setTimeout]
 * @property {(handle: any) => void} [clearTimeout]
 * @property {number} [queueLimit] deprecated until 1.0: `outboxLimit` (an old name wins over its new one)
 * @property {number} [queueSize] deprecated until 1.0: `peerQueueSize`
 * @property {number} [queueTtl] deprecated until 1.0: `peerQueueTtl`
 */

/**
 * @typedef {"idle" | "connecting" | "open" | "reconnecting" | "closed"} ConnectionState
 */

/**
 * @typedef {object} Message One channel publication as a subscriber receives it.
 * @property {string} channel
 * @property {string} event
 * @property {any} data
 * @property {number} offset position in the channel's history
 */

/**
 * @typedef {object} SubscribeOptions
 * @property {unknown} [query] given to the channel's subscription policy (e.g. a password)
 * @property {string} [label] shown in the presence list
 * @property {Record<string, unknown>} [meta] shown in the presence list
 */

/**
 * @typedef {object} PublishOptions
 * @property {boolean} [excludeSelf] leave this client out of its own publication
 * @property {string} [idempotencyKey] 1 to 64 characters naming this message: a retry with the same key publishes once
 */

/**
 * @typedef {object} PresenceMember
 * @property {string} client_id
 * @property {string | null} user
 * @property {string | null} label
 * @property {Record<string, unknown> | null} meta
 * @property {"connected" | "disconnected" | "reconnected" | "removed"} state in the list
 *   `connected` or `disconnected`; a `member` event carries the transition
 * @property {string} [channel] in a `member` event: the channel
 * @property {number} first_seen
 * @property {number} last_seen
 */

/**
 * @typedef {object} PresencePage
 * @property {number} count
 * @property {PresenceMember[]} members
 * @property {string} [cursor] pass it back for the next page
 */

/**
 * @typedef {object} HistoryOptions
 * @property {number} [before] the publications with a lower offset (paging back)
 * @property {number} [after] the publications with a higher offset (paging forward)
 * @property {number} [limit] at most this many, 1 to 100 (the server's default: 50)
 * @property {string} [epoch] the first page's epoch: another one answers an empty page
 * @property {unknown} [query] handed to the namespace's subscribe policy
 */

/**
 * @typedef {object} HistoryPublication
 * @property {string} event
 * @property {unknown} data
 * @property {number} offset
 */

/**
 * @typedef {object} HistoryPage
 * @property {string} channel
 * @property {string} epoch
 * @property {number} offset the channel's newest offset when the page was read
 * @property {HistoryPublication[]} publications oldest first
 * @property {boolean} more whether the window holds more that way
 */

/**
 * @typedef {object} CallOptions
 * @property {number | null} [timeout] seconds (default `callTimeout`; 0 or null: forever);
 *   on expiry the call rejects with `Timeout` and the server is told to cancel
 * @property {boolean} [retry=false] send again after a reconnect if the answer was lost
 * @property {AbortSignal} [signal] aborting rejects with `Cancelled` and cancels on the server
 * @property {Record<string, unknown>} [extra] top-level keys added beside `event` and `data`
 *   (a key of `RESERVED_KEYS` throws TypeError)
 */

/**
 * @typedef {object} TellOptions
 * @property {Record<string, unknown>} [extra] top-level keys added beside `event` and `data`,
 *   handed to the server's passthrough receivers in `message` (a key of `RESERVED_KEYS` throws
 *   TypeError)
 */

/**
 * @typedef {object} StageChange The data of a `ws:stage` event.
 * @property {string | null} stage the stage the server reports now
 * @property {string | null} previous the stage before
 */

/** @typedef {(data: any, frame: Record<string, any>) => unknown} Listener */

/**
 * A frame middleware hook: it gets the decoded frame and may change it in place or return a
 * replacement object (null or undefined keeps the frame); throwing refuses the frame.
 * @typedef {(frame: Record<string, any>) => Record<string, any> | null | undefined | void} FrameHook
 */

/**
 * A message taken from the peer queue.
 * @typedef {object} Queued
 * @property {any} data
 * @property {number} seq its number in this client's queue (increasing)
 */

class Pending {
  /**
   * @param {string} text the encoded frame
   * @param {boolean} retry @param {boolean} stream
   */
  constructor(text, retry, stream) {
    this.text = text;
    this.retry = retry;
    this.sent = false;
    this.settled = false;
    /** @type {any} */
    this.sync = undefined; // the current object of a SYNC reply stream
    /** @type {Array<{ kind: "chunk" | "end" | "reply" | "error", value?: any }>} */
    this.items = [];
    /** @type {((item: { kind: "chunk" | "end" | "reply" | "error", value?: any }) => void) | null} */
    this.waiter = null;
    /** @type {(value: any) => void} */
    this.resolve = () => {};
    /** @type {(error: Error) => void} */
    this.reject = () => {};
    this.stream = stream;
    /** @type {Promise<any>} */
    this.promise = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.promise.catch(() => {}); // a caller that stopped waiting must not cause an unhandled rejection
  }

  /** @param {{ kind: "chunk" | "end" | "reply" | "error", value?: any }} item */
  push(item) {
    if (item.kind !== "chunk") this.settled = true;
    if (!this.stream) {
      if (item.kind === "error") this.reject(item.value);
      else this.resolve(item.value);
      return;
    }
    const waiter = this.waiter;
    this.waiter = null;
    if (waiter) waiter(item);
    else this.items.push(item);
  }

  /** @returns {Promise<{ kind: "chunk" | "end" | "reply" | "error", value?: any }>} */
  next() {
    const item = this.items.shift();
    if (item) return Promise.resolve(item);
    return new Promise((resolve) => { this.waiter = resolve; });
  }

  /** @param {MonumentError} error */
  fail(error) {
    if (!this.settled) this.push({ kind: "error", value: error });
  }
}

/** A channel this client is subscribed to; it survives reconnects. */
export class Subscription {
  /**
   * @param {Client} client @param {string} channel
   * @param {(message: Message) => unknown} handler @param {SubscribeOptions} options
   */
  constructor(client, channel, handler, options) {
    this.client = client;
    this.channel = channel;
    this.handler = handler;
    this.options = options;
    /** Newest publication received; publications at or below it are dropped as duplicates. */
    this.offset = 0;
    /** @type {string | null} the history `offset` belongs to */
    this.epoch = null;
    /** @type {boolean | null} after a (re)subscribe: whether every missed publication was replayed */
    this.recovered = null;
    this.active = true;
    /** @private @type {Map<string, Set<Function>>} */
    this._listeners = new Map();
    /** @type {Record<string, any>[] | null} publications held while a reserved channel recovers */
    this.held = null;
  }

  /**
   * Observe `"join"` / `"leave"` (`{client_id}`, in namespaces with join_leave),
   * `"member"` (a `PresenceMember` whose `state` is the transition: connected, disconnected,
   * reconnected or removed; in namespaces with presence_events),
   * `"resubscribed"` (`{recovered}` after a reconnect) and `"revoked"` (`{reason}`).
   * Returns a function that removes the listener.
   * @param {"join" | "leave" | "member" | "resubscribed" | "revoked"} what @param {(data: any) => unknown} listener
   */
  on(what, listener) {
    let set = this._listeners.get(what);
    if (!set) this._listeners.set(what, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
    };
  }

  /** Hand `data` to the `what` listeners (the client calls it). @param {string} what @param {unknown} data */
  _emit(what, data) {
    for (const listener of [...(this._listeners.get(what) ?? [])]) {
      try {
        listener(data);
      } catch (error) {
        console.error(`a ${what} listener of ${this.channel} failed`, error);
      }
    }
  }

  /** Who is in the channel (namespaces with presence on). @param {{ limit?: number, cursor?: string }} [page] */
  presence(page) {
    return this.client.presence(this.channel, page);
  }

  unsubscribe() {
    return this.client.unsubscribe(this.channel);
  }
}

/** A running `client.every(...)`; `cancel()` stops it (closing the client does too). */
export class Periodic {
  /** @param {() => void} cancel */
  constructor(cancel) {
    /** @private */
    this._cancel = cancel;
    this.cancelled = false;
  }
  cancel() {
    this.cancelled = true;
    this._cancel();
  }
}

/** A monument_ws connection that reconnects, resumes, and keeps what it sends while offline. */
export class Client {
  /**
   * @param {string | URL | Array<string | URL>} [url="/ws"] the socket URL, or every URL the
   *   client may use (each process or load balancer), tried in turn; relative URLs resolve
   *   against the page
   * @param {ClientOptions} [options]
   */
  constructor(url = "/ws", options = {}) {
    /** @type {Array<string | URL>} every server URL this client may use, in the order tried */
    this.urls = Array.isArray(url) ? [...url] : [url];
    if (!this.urls.length) throw new TypeError("Client needs at least one URL");
    /** @private */
    this._urlIndex = 0;
    this.reconnect = options.reconnect ?? true;
    this.backoffInitial = options.backoffInitial ?? 0.25;
    this.backoffMax = options.backoffMax ?? 30;
    this.longDelay = options.longDelay ?? 15;
    this.maxRetries = options.maxRetries ?? Infinity;
    /** @type {number | null} seconds every reconnect attempt waits instead of the backoff (null: the backoff) */
    this.retryInterval = options.retryInterval ?? null;
    this.outboxLimit = renamedOption(options, "queueLimit") ?? options.outboxLimit ?? 1000;
    this.callTimeout = options.callTimeout ?? 60;
    this.heartbeat = options.heartbeat ?? true;
    this.peerQueueSize = renamedOption(options, "queueSize") ?? options.peerQueueSize ?? 100;
    this.peerQueueTtl = renamedOption(options, "queueTtl") ?? options.peerQueueTtl ?? 120;
    /** Peer-queue messages dropped by `peerQueueSize` or `peerQueueTtl` before they were consumed. */
    this.peerQueueDropped = 0;
    /** Incoming frames refused by a hook. */
    this.refused = 0;
    /** @private */
    this._clock = options.clock ?? (() => performance.now() / 1000);
    /** @private */
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    /** @private */
    this._random = options.random ?? Math.random;
    /** @private */
    this._setTimeout = options.setTimeout ?? ((fn, ms) => globalThis.setTimeout(fn, ms));
    /** @private */
    this._clearTimeout = options.clearTimeout ?? ((handle) => globalThis.clearTimeout(handle));

    /** @type {string | null} issued by the server; kept across reconnects */
    this.clientId = null;
    /** @type {string | null} */
    this.resume = null;
    /** @type {Record<string, any>} the data of the last ws:welcome */
    this.welcome = {};
    /** @type {ConnectionState} */
    this.state = "idle";
    /** @type {number | null} */
    this.closeCode = null;
    this.closeReason = "";
    /** Reconnect attempts since the last welcome. */
    this.attempt = 0;
    /**
     * The auth stage as the server last reported it (the welcome's `stage`, then each
     * `auth()` answer); null before the first welcome. `ws:stage` is emitted when it changes.
     * @type {string | null}
     */
    this.stage = null;

    /** @private @type {WebSocket | null} */
    this._ws = null;
    /** @private */
    this._welcomed = false;
    /** @private */
    this._nextId = 1;
    /** @private @type {Map<number, Pending>} */
    this._calls = new Map();
    /** @private @type {Array<{ text: string, call: Pending | null }>} */
    this._outbox = [];
    /** @private @type {Map<string, Set<Listener>>} */
    this._listeners = new Map();
    /** @private @type {Set<(frame: any) => unknown>} */
    this._raw = new Set();
    /** @private @type {FrameHook[]} */
    this._incoming = [];
    /** @private @type {FrameHook[]} */
    this._outgoing = [];
    /** @private @type {Array<{ data: any, seq: number, expires: number }>} peer-queue messages for `consume()` */
    this._inbox = [];
    /** The highest peer-queue seq received: the server never sends it again. @private */
    this._inboxLast = 0;
    /** @private @type {Map<string, (data: any, frame: Record<string, any>) => unknown>} */
    this._performers = new Map();
    /** @private @type {Map<string, Subscription>} */
    this._subscriptions = new Map();
    /** @private @type {Map<string, Subscription>} the reserved channels by kind (user, session) */
    this._reserved = new Map();
    /** @private @type {Record<string, Set<(message: Message) => unknown>>} */
    this._reservedHandlers = { user: new Set(), session: new Set() };
    /** @private @type {Map<string, unknown>} */
    this._synced = new Map();
    /** @private @type {Set<any>} */
    this._timers = new Set();
    /** @private @type {any} */
    this._retryTimer = null;
    /** @private @type {any} */
    this._beatTimer = null;
    /** @private */
    this._lastSent = /** @type {Pending | null} */ (null);
    /** @private */
    this._deadSocket = false;
    /** @type {Promise<void>} resolves at the first welcome; rejects if the client closes first */
    this.ready = new Promise((resolve, reject) => {
      /** @private */
      this._readyResolve = resolve;
      /** @private */
      this._readyReject = reject;
    });
    this.ready.catch(() => {});
    /** @private */
    this._onOnline = () => this._retryNow();
    globalThis.addEventListener?.("online", this._onOnline);
    if (options.connect ?? true) this.connect();
  }

  // --- lifecycle --------------------------------------------------------------

  /** Open the connection (once); resolves at the first welcome. */
  connect() {
    if (this.state === "idle") this._open();
    return this.ready;
  }

  /** Close for good (code 1000): no reconnect; waiting calls fail with ConnectionLost. */
  close(code = 1000, reason = "closed by the client") {
    if (this.state === "closed") return;
    const ws = this._ws;
    this._finish(code, reason, false);
    if (ws && ws.readyState <= 1) ws.close(code, reason);
  }

  /** The server URL in use (or being tried) now: one of `urls`. */
  get url() {
    return this.urls[this._urlIndex];
  }

  get connected() {
    return this.state === "open";
  }

  /**
   * Frames in the outbox: made but not yet written to a socket, because the client is offline
   * or was not welcomed yet (at most `outboxLimit`).
   */
  get outboxLength() {
    return this._outbox.length;
  }

  /** @deprecated until 1.0: `outboxLength` */
  get queued() {
    warnRenamed("queued");
    return this.outboxLength;
  }

  /** @deprecated until 1.0: `outboxLimit` */
  get queueLimit() {
    warnRenamed("queueLimit");
    return this.outboxLimit;
  }

  /** @deprecated until 1.0: `outboxLimit` */
  set queueLimit(value) {
    warnRenamed("queueLimit");
    this.outboxLimit = value;
  }

  /** @deprecated until 1.0: `peerQueueSize` */
  get queueSize() {
    warnRenamed("queueSize");
    return this.peerQueueSize;
  }

  /** @deprecated until 1.0: `peerQueueSize` */
  set queueSize(value) {
    warnRenamed("queueSize");
    this.peerQueueSize = value;
  }

  /** @deprecated until 1.0: `peerQueueTtl` */
  get queueTtl() {
    warnRenamed("queueTtl");
    return this.peerQueueTtl;
  }

  /** @deprecated until 1.0: `peerQueueTtl` */
  set queueTtl(value) {
    warnRenamed("queueTtl");
    this.peerQueueTtl = value;
  }

  /** @deprecated until 1.0: `peerQueueDropped` */
  get queueDropped() {
    warnRenamed("queueDropped");
    return this.peerQueueDropped;
  }

  /** @deprecated until 1.0: `peerQueueDropped` */
  set queueDropped(value) {
    warnRenamed("queueDropped");
    this.peerQueueDropped = value;
  }

  /** @returns {Record<string, Subscription>} */
  get subscriptions() {
    return Object.fromEntries(this._subscriptions);
  }

  // --- requests ----------------------------------------------------------------

  /**
   * Send a request and resolve with its reply's data (for a SYNC reply: the current object).
   * Rejects with the server's typed error (`remote` true), `Timeout`, `Cancelled`,
   * `ConnectionLost`, `QueueFull` or `TooLarge`.
   * @param {string} event @param {unknown} [data] @param {CallOptions} [options]
   * @returns {Promise<any>}
   */
  async call(event, data, options = {}) {
    const { id, call } = this._request(event, data, options.retry ?? false, false, false, options.extra);
    const timeout = options.timeout === undefined ? this.callTimeout : options.timeout;
    /** @type {any} */
    let timer = null;
    const onAbort = () => {
      this._cancelRemote(id, call);
      call.fail(new Cancelled(`the call of ${JSON.stringify(event)} was aborted`));
    };
    if (options.signal?.aborted) onAbort();
    options.signal?.addEventListener("abort", onAbort, { once: true });
    if (timeout) {
      timer = this._later(() => {
        this._cancelRemote(id, call);
        call.fail(new Timeout(`no answer to ${JSON.stringify(event)} within ${timeout} s`));
      }, timeout * 1000);
    }
    try {
      return await call.promise;
    } finally {
      if (timer !== null) this._cancel(timer);
      options.signal?.removeEventListener("abort", onAbort);
      this._forget(id, call);
    }
  }

  /**
   * Send without expecting a reply (kept in the outbox while offline). Throws QueueFull (the
   * outbox is full), TooLarge, or TypeError for an `extra` key the protocol reserves.
   * @param {string} event @param {unknown} [data] @param {TellOptions} [options]
   */
  tell(event, data, options = {}) {
    this._toOutbox(JSON.stringify(frameOf(event, data, options.extra)), null);
  }

  /**
   * Run one stage of the server's staged auth (`ws:auth` with `{stage, ...payload}`) and
   * resolve with the authenticator's answer; `stage` is then the stage the server moved the
   * socket to (`ws:stage` is emitted). Rejects with `AuthFailed` (an `Unauthorized`, with
   * `stage`) when the server refuses the stage, which leaves `stage` as it was; otherwise like
   * `call` (`NotFound`: the server has no stages). A payload that is not a plain object, or
   * has its own `stage`, throws TypeError. A reconnect is a new socket: the server forgets
   * what `ws:auth` established, and `stage` follows the new welcome (e.g. back to "anonymous").
   * @param {string} stage @param {Record<string, unknown>} [payload]
   * @param {{ timeout?: number | null }} [options]
   * @returns {Promise<any>}
   */
  async auth(stage, payload, options = {}) {
    if (typeof stage !== "string" || !stage) throw new TypeError("auth() needs a stage: a non-empty string");
    if (payload !== undefined && payload !== null && (!isObject(payload) || Array.isArray(payload))) {
      throw new TypeError("the auth payload must be a plain object");
    }
    if (payload && Object.hasOwn(payload, "stage")) {
      throw new TypeError("the auth payload may not have a 'stage' key: pass it as stage");
    }
    let reply;
    try {
      reply = await this.call("ws:auth", { ...(payload ?? {}), stage }, { timeout: options.timeout });
    } catch (error) {
      if (error instanceof Unauthorized && !(error instanceof AuthFailed)) {
        throw new AuthFailed(error.message, { remote: error.remote, data: error.data, stage });
      }
      throw error;
    }
    if (!isObject(reply)) return null;
    if (typeof reply.stage === "string") this._setStage(reply.stage);
    return reply.data;
  }

  /**
   * Iterate over a streamed reply's chunks (a plain reply is the only item).
   * Leaving the loop early (`break`, an exception) cancels it on the server.
   * The request is sent when iteration starts.
   * @param {string} event @param {unknown} [data]
   * @returns {AsyncGenerator<any, void, undefined>}
   */
  async *stream(event, data) {
    const { id, call } = this._request(event, data, false, true);
    let finished = false;
    try {
      for (;;) {
        const item = await call.next();
        if (item.kind === "chunk") yield item.value;
        else if (item.kind === "end") {
          finished = true;
          return;
        } else if (item.kind === "reply") {
          finished = true;
          yield item.value;
          return;
        } else {
          finished = true;
          throw item.value;
        }
      }
    } finally {
      if (!finished) this._cancelRemote(id, call);
      this._forget(id, call);
    }
  }

  /**
   * Call `listener(data, frame)` for every push of `event`, or a lifecycle event:
   * `ws:state` (`{state, previous}`), `ws:connect` / `ws:reconnect` (the welcome),
   * `ws:offline` (`{code, reason, delay}`), `ws:close` (`{code, reason}`, final),
   * `ws:error` (an error frame that answers no request), `ws:resubscribed`
   * (`{channel, recovered}`), `ws:join` / `ws:leave` (`{client_id}`, frame.channel),
   * `ws:member` (a presence transition, see `Subscription.on`),
   * `ws:stage` (`{stage, previous}`: the auth stage changed, see `auth`).
   * Returns a function that removes the listener.
   * @param {string} event @param {Listener} listener
   */
  on(event, listener) {
    let set = this._listeners.get(event);
    if (!set) this._listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => this.off(event, listener);
  }

  /** @param {string} event @param {Listener} listener */
  off(event, listener) {
    this._listeners.get(event)?.delete(listener);
  }

  /**
   * Call `listener(frame)` with every frame from the server, the welcome included, before the
   * hooks and dispatch: the decoded JSON value, or the raw text when it is not JSON. It cannot
   * change or refuse frames; one that throws is logged and the others still run.
   * Returns a function that removes it.
   * @param {(frame: any) => unknown} listener
   */
  listen(listener) {
    this._raw.add(listener);
    return () => {
      this._raw.delete(listener);
    };
  }

  /**
   * Run `hook(frame)` on every frame from the server after the welcome, before dispatch, in
   * the order the hooks were added (see `FrameHook`). Hooks are synchronous. Throwing refuses
   * the frame and counts it in `refused`: a server call is answered with `ws:error` and the
   * error's code, a reply (or a stream's chunk) rejects its call with the error, anything else
   * is dropped. An error that is not a `MonumentError` is logged and refuses as `internal`.
   * Returns a function that removes the hook.
   * @param {FrameHook} hook
   */
  incoming(hook) {
    this._incoming.push(hook);
    return () => removeFrom(this._incoming, hook);
  }

  /**
   * Run `hook(frame)` on every frame before it enters the outbox — calls, tells, streams,
   * subscribes, heartbeats, cancels, answers to the server's calls — in the order the hooks were
   * added. What it throws is thrown by the `tell` (or rejects the `call`) that sent the frame,
   * and nothing enters the outbox. A call sent again after a reconnect (`retry: true`) goes as the hooks
   * left it; they do not run twice. Returns a function that removes the hook.
   * @param {FrameHook} hook
   */
  outgoing(hook) {
    this._outgoing.push(hook);
    return () => removeFrom(this._outgoing, hook);
  }

  /**
   * Answer the server's calls of `event` with `handler(data)` (sync or async).
   * A MonumentError it throws is sent back with its code, anything else as
   * `internal`; calls of events nobody performs get `not_found`.
   * @param {string} event @param {(data: any, frame: Record<string, any>) => unknown} handler
   */
  perform(event, handler) {
    this._performers.set(event, handler);
  }

  /**
   * Tell `event` every `interval` seconds (`data` may be a function called each
   * time); with `onResult` it is a call and its reply (or error) is passed to it.
   * @param {number} interval @param {string} event @param {unknown} [data]
   * @param {{ onResult?: (result: any) => unknown }} [options]
   */
  every(interval, event, data, options = {}) {
    /** @type {any} */
    let timer = null;
    const periodic = new Periodic(() => this._cancel(timer));
    const tick = async () => {
      const payload = typeof data === "function" ? data() : data;
      try {
        if (options.onResult) {
          let result;
          try {
            result = await this.call(event, payload);
          } catch (error) {
            result = error;
          }
          await options.onResult(result);
        } else {
          this.tell(event, payload);
        }
      } catch (error) {
        console.warn(`every(${JSON.stringify(event)}) failed`, error);
      }
      if (!periodic.cancelled && this.state !== "closed") timer = this._later(tick, interval * 1000);
    };
    timer = this._later(tick, interval * 1000);
    return periodic;
  }

  /**
   * The current object of a SYNC event (`{"sync": "full" | "patch"}` frames), or undefined.
   * @param {string} event
   */
  synced(event) {
    return this._synced.get(event);
  }

  /**
   * Stop the pushes of the live value `event` (`x:get:y`, asked without data) with
   * `ws:unwatch`; resolves with whether it was watched. A reconnect ends every watch: ask again.
   * @param {string} event @param {CallOptions} [options]
   * @returns {Promise<boolean>}
   */
  async unwatch(event, options) {
    const reply = await this.call("ws:unwatch", { event }, options);
    return reply.watched === true;
  }

  // --- peer queue ------------------------------------------------------------------

  /**
   * Queue `data` for the server (its `socket.consume()` takes it); resolves with its seq once the
   * message is stored in the server's broker (for the server's `peer_queue_ttl` seconds,
   * reachable from any process). Kept in the outbox while offline like any call; rejects like
   * `call`.
   * @param {unknown} [data] @param {CallOptions} [options]
   * @returns {Promise<number>}
   */
  async enqueue(data, options) {
    const reply = await this.call("ws:enqueue", data, options);
    return reply.seq;
  }

  /**
   * Take the oldest message the server queued for this client that `accept(data)` accepts
   * (any, without `accept`); null when there is none. Messages queued while the client was
   * away arrive after it reconnects.
   * @param {(data: any) => boolean} [accept]
   * @returns {Queued | null}
   */
  consume(accept) {
    this._expireInbox();
    const index = this._inbox.findIndex((entry) => !accept || accept(entry.data));
    if (index < 0) return null;
    const [{ data, seq }] = this._inbox.splice(index, 1);
    return { data, seq };
  }

  /** How many peer-queue messages wait in the inbox for `consume()`. */
  get enqueued() {
    this._expireInbox();
    return this._inbox.length;
  }

  /** @private @param {Record<string, any>} frame a `ws:enqueue` push with its integer `seq` */
  _toInbox(frame) {
    if (frame.seq <= this._inboxLast) return; // already received (sent again after a reconnect)
    this._inboxLast = frame.seq;
    this._inbox.push({ data: frame.data, seq: frame.seq, expires: this._clock() + this.peerQueueTtl });
    while (this._inbox.length > this.peerQueueSize) {
      this._inbox.shift();
      this.peerQueueDropped += 1;
    }
  }

  /** @private */
  _expireInbox() {
    const now = this._clock();
    while (this._inbox.length && this._inbox[0].expires < now) {
      this._inbox.shift();
      this.peerQueueDropped += 1;
    }
  }

  // --- channels ------------------------------------------------------------------

  /**
   * Subscribe to `channel`; `handler(message)` gets each publication in offset order.
   * After every reconnect the client resubscribes by itself with `since`, so missed
   * publications are replayed (see `Subscription.recovered`). Rejects with the
   * server's error (e.g. Forbidden) if refused.
   * @param {string} channel @param {(message: Message) => unknown} handler @param {SubscribeOptions} [options]
   * @returns {Promise<Subscription>}
   */
  async subscribe(channel, handler, options = {}) {
    if (this._subscriptions.has(channel)) {
      throw new Error(`already subscribed to ${JSON.stringify(channel)}; unsubscribe first`);
    }
    const subscription = new Subscription(this, channel, handler, options);
    this._subscriptions.set(channel, subscription);
    try {
      await this._join(subscription, false);
    } catch (error) {
      if (this._subscriptions.get(channel) === subscription) this._subscriptions.delete(channel);
      throw error;
    }
    return subscription;
  }

  /** @param {string} channel */
  async unsubscribe(channel) {
    const subscription = this._subscriptions.get(channel);
    if (!subscription) return;
    this._subscriptions.delete(channel);
    subscription.active = false;
    await this.call("ws:unsubscribe", { channel });
  }

  /**
   * Publish to `channel` (where its namespace lets clients); resolves with the offset.
   * With `{ excludeSelf: true }` this client (its client id) does not get it, live or when
   * it recovers the channel (the frame's `exclude_sender`). With `{ idempotencyKey }` (e.g.
   * `crypto.randomUUID()`, made once per message) a publish that failed without an answer (a
   * timeout or a lost connection: it may have been published) can be retried with the same
   * key: the server publishes once and answers the first offset (the frame's `idempotency_key`).
   * @param {string} channel @param {string} event @param {unknown} [data] @param {PublishOptions} [options]
   * @returns {Promise<number>}
   */
  async publish(channel, event, data, options = {}) {
    /** @type {Record<string, unknown>} */
    const frame = { channel, event, data: data ?? null };
    // Anything but false/absent goes to the server, which answers bad_frame unless a boolean.
    if (options.excludeSelf !== undefined && options.excludeSelf !== false) {
      frame.exclude_sender = options.excludeSelf;
    }
    // The server validates the key (bad_frame).
    if (options.idempotencyKey !== undefined) frame.idempotency_key = options.idempotencyKey;
    const reply = await this.call("ws:publish", frame);
    return reply.offset;
  }

  /**
   * Call `handler(message)` with every publication to this client's user channel
   * (`$user:<id>`, the server's `publish_to_user`), in offset order, across reconnects
   * (what was published while away is recovered from the channel's history).
   * Returns a function that removes the handler.
   * @param {(message: Message) => unknown} handler
   * @returns {() => void}
   */
  onUser(handler) {
    return this._onReserved("user", handler);
  }

  /**
   * Like `onUser`, for this client's session channel (`$session:<hash>`, the server's
   * `publish_to_session`).
   * @param {(message: Message) => unknown} handler
   * @returns {() => void}
   */
  onSession(handler) {
    return this._onReserved("session", handler);
  }

  /**
   * Remove a handler `onUser` added (as the function it returned does).
   * @param {(message: Message) => unknown} handler
   */
  offUser(handler) {
    this._reservedHandlers.user.delete(handler);
  }

  /**
   * Remove a handler `onSession` added.
   * @param {(message: Message) => unknown} handler
   */
  offSession(handler) {
    this._reservedHandlers.session.delete(handler);
  }

  /** @private @param {"user" | "session"} kind @param {(message: Message) => unknown} handler */
  _onReserved(kind, handler) {
    const handlers = this._reservedHandlers[kind];
    handlers.add(handler);
    return () => {
      handlers.delete(handler);
    };
  }

  /**
   * The subscription standing for a reserved channel of `kind`.
   * @private @param {string} kind @param {string} channel
   */
  _reservedSubscription(kind, channel) {
    const handlers = this._reservedHandlers[kind];
    /** @param {Message} message */
    const handler = (message) => {
      for (const fn of [...handlers]) {
        try {
          const result = fn(message);
          if (result instanceof Promise) result.catch((error) => console.error(`an on${kind} handler failed`, error));
        } catch (error) {
          console.error(`monument_ws: an ${kind} channel handler failed`, error);
        }
      }
    };
    const subscription = new Subscription(this, channel, handler, {});
    this._reserved.set(kind, subscription);
    return subscription;
  }

  /**
   * The welcome named the reserved channels the socket was subscribed to: follow them
   * from their offset, or recover what was missed since the last socket.
   * @private @param {unknown} named
   */
  _welcomeReserved(named) {
    const channels = isObject(named) ? named : {};
    for (const kind of ["user", "session"]) {
      const info = channels[kind];
      const known = this._reserved.get(kind);
      if (!isObject(info) || typeof info.channel !== "string") {
        this._reserved.delete(kind);
      } else if (known && known.channel === info.channel && known.epoch !== null
        && (known.epoch !== info.epoch || known.offset < info.offset)) {
        this._recoverReserved(known);
      } else if (!known || known.channel !== info.channel) {
        const fresh = this._reservedSubscription(kind, info.channel);
        fresh.offset = info.offset;
        fresh.epoch = info.epoch;
      }
    }
  }

  /** @private @param {Subscription} subscription */
  async _recoverReserved(subscription) {
    const before = subscription.offset;
    subscription.held = [];
    try {
      await this._rejoin(subscription);
    } finally {
      const held = subscription.held ?? [];
      subscription.held = null;
      const after = subscription.offset;
      if (!subscription.recovered) subscription.offset = before; // the live ones still count
      for (const frame of held.sort((a, b) => a.offset - b.offset)) this._publication(frame);
      if (!subscription.recovered) subscription.offset = Math.max(subscription.offset, after);
    }
  }

  /**
   * The subscription a publication of `channel` belongs to: the application's, or a reserved
   * channel's (one joined after a ws:auth step is learnt from its first publication).
   * @private @param {unknown} channel
   */
  _subscriptionOf(channel) {
    if (typeof channel !== "string") return undefined;
    const found = this._subscriptions.get(channel);
    if (found || !(channel.startsWith("$user:") || channel.startsWith("$session:"))) return found;
    const kind = channel.startsWith("$user:") ? "user" : "session";
    const known = this._reserved.get(kind);
    return known && known.channel === channel ? known : this._reservedSubscription(kind, channel);
  }

  /**
   * Who is in `channel`: one page of members (follow `cursor` for more).
   * @param {string} channel @param {{ limit?: number, cursor?: string }} [page]
   * @returns {Promise<PresencePage>}
   */
  presence(channel, page = {}) {
    return this.call("ws:presence", { channel, ...page });
  }

  /**
   * One page of `channel`'s history window (`ws:history`): the latest publications, or those
   * `before` / `after` an offset, oldest first. Go on with `before: page.publications[0].offset`
   * (or `after:` the last one) and the first page's `epoch` while `more`. No subscription is
   * needed; the namespace's subscribe policy decides (`forbidden` otherwise).
   * @param {string} channel @param {HistoryOptions} [page]
   * @returns {Promise<HistoryPage>}
   */
  history(channel, page = {}) {
    return this.call("ws:history", { channel, ...page });
  }

  /**
   * @param {Subscription} subscription @param {boolean} first whether to put the request ahead of the outbox
   * @private
   */
  async _join(subscription, first) {
    /** @type {Record<string, unknown>} */
    const request = { channel: subscription.channel };
    const { query, label, meta } = subscription.options;
    if (query !== undefined) request.query = query;
    if (label !== undefined) request.label = label;
    if (meta !== undefined) request.meta = meta;
    if (subscription.epoch !== null) {
      request.since = { offset: subscription.offset, epoch: subscription.epoch };
    }
    const reply = first
      ? await this._callFirst("ws:subscribe", request)
      : await this.call("ws:subscribe", request);
    subscription.epoch = reply.epoch;
    subscription.recovered = Boolean(reply.recovered);
    if (!subscription.recovered) subscription.offset = reply.offset;
  }

  /** @private @param {Subscription} subscription */
  async _rejoin(subscription) {
    try {
      await this._join(subscription, true);
    } catch (error) {
      if (error instanceof ConnectionLost) return; // the next welcome rejoins
      const e = /** @type {MonumentError} */ (error);
      this._emit("ws:error", { code: e.code, message: e.message, channel: subscription.channel }, {});
      return;
    }
    const data = { channel: subscription.channel, recovered: subscription.recovered };
    subscription._emit("resubscribed", data);
    this._emit("ws:resubscribed", data, {});
  }

  /**
   * A request sent ahead of everything in the outbox (resubscribing after a reconnect).
   * @param {string} event @param {unknown} data
   * @private
   */
  async _callFirst(event, data) {
    const { id, call } = this._request(event, data, false, false, true);
    try {
      return await call.promise;
    } finally {
      this._forget(id, call);
    }
  }

  // --- internals: outgoing ------------------------------------------------------------

  /**
   * @param {string} event @param {unknown} data @param {boolean} retry @param {boolean} stream
   * @param {boolean} [first] @param {Record<string, unknown>} [extra]
   * @private
   */
  _request(event, data, retry, stream, first = false, extra = undefined) {
    if (this.state === "closed") throw new ConnectionLost("the client is closed");
    const text = JSON.stringify(frameOf(event, data, extra, this._nextId));
    const id = this._nextId++;
    const call = new Pending(text, retry, stream);
    this._toOutbox(call.text, call, first);
    this._calls.set(id, call);
    return { id, call };
  }

  /** @private @param {number} id @param {Pending} call */
  _forget(id, call) {
    if (this._calls.get(id) === call) this._calls.delete(id);
    if (!call.sent) {
      const index = this._outbox.findIndex((entry) => entry.call === call);
      if (index >= 0) this._outbox.splice(index, 1);
    }
  }

  /** @private @param {number} id @param {Pending} call */
  _cancelRemote(id, call) {
    if (call.sent && this.connected) {
      try {
        this._toOutbox(JSON.stringify({ event: "ws:cancel", data: { id } }), null);
      } catch {
        // a full outbox: the server's answer will simply be ignored
      }
    }
  }

  /** @private @param {string} text @param {Pending | null} call @param {boolean} [first] */
  _toOutbox(text, call, first = false) {
    if (this.state === "closed") throw new ConnectionLost("the client is closed");
    if (this._outgoing.length) {
      let frame = JSON.parse(text);
      for (const hook of [...this._outgoing]) frame = hooked(hook, frame);
      text = JSON.stringify(frame);
      if (call) call.text = text;
    }
    const limit = this.welcome.max_message_size;
    if (typeof limit === "number") {
      const size = new TextEncoder().encode(text).length;
      if (size > limit) throw new TooLarge(`the frame has ${size} bytes; the server accepts ${limit}`);
    }
    if (this._outbox.length >= this.outboxLimit) {
      throw new QueueFull(`the outbox is full: ${this.outboxLimit} frames are waiting to be sent`);
    }
    if (first) this._outbox.unshift({ text, call });
    else this._outbox.push({ text, call });
    this._flush();
  }

  /** @private */
  _flush() {
    const ws = this._ws;
    if (!ws || !this._welcomed || ws.readyState !== 1) return;
    const limit = this.welcome.max_message_size;
    while (this._outbox.length && ws.readyState === 1) {
      const { text, call } = /** @type {{ text: string, call: Pending | null }} */ (this._outbox.shift());
      // Put in the outbox before the welcome told the limit: the server would close with 1009.
      if (typeof limit === "number" && text.length > limit / 3 && new TextEncoder().encode(text).length > limit) {
        const error = new TooLarge(`a frame in the outbox is larger than the server's ${limit} bytes; dropped`);
        if (call) call.fail(error);
        else console.warn("monument_ws:", error.message);
        continue;
      }
      ws.send(text);
      if (call) {
        call.sent = true;
        this._lastSent = call;
      }
    }
  }

  // --- internals: the connection -------------------------------------------------------

  /** @private @param {ConnectionState} state */
  _setState(state) {
    const previous = this.state;
    if (previous === state) return;
    this.state = state;
    this._emit("ws:state", { state, previous }, {});
  }

  /** @private @param {string | null} stage */
  _setStage(stage) {
    const previous = this.stage;
    if (previous === stage) return;
    this.stage = stage;
    this._emit("ws:stage", { stage, previous }, {});
  }

  /** @private */
  _open() {
    this._retryTimer = null;
    this._setState(this.clientId ? "reconnecting" : "connecting");
    this._welcomed = false;
    this._deadSocket = false;
    let ws;
    try {
      const target = new URL(socketUrl(this.url, this.resume));
      if (this.resume && this._inboxLast) target.searchParams.set("queued", String(this._inboxLast));
      ws = new this._WebSocket(target.toString(), SUBPROTOCOL);
    } catch (error) {
      console.warn("monument_ws: cannot open", this.url, error);
      this._dropped(CloseCode.ABNORMAL, String(error));
      return;
    }
    this._ws = ws;
    ws.onmessage = (event) => {
      if (this._ws === ws) this._onText(typeof event.data === "string" ? event.data : "");
    };
    ws.onclose = (event) => {
      if (this._ws !== ws) return;
      this._ws = null;
      const code = this._deadSocket ? CloseCode.ABNORMAL : event.code;
      this._dropped(code, event.reason || "");
    };
    ws.onerror = () => {
      // Browsers fire close in the same task as error. Node 20's WebSocket fires no close when
      // the connection cannot be made (a server down): a socket still connecting after that
      // task counts as dropped, so the client retries, on the next URL when it has several.
      this._later(() => {
        if (this._ws !== ws || ws.readyState !== 0) return;
        this._ws = null;
        this._dropped(CloseCode.ABNORMAL, "the connection failed");
      }, 0);
    };
  }

  /** @private @param {number} code @param {string} reason */
  _dropped(code, reason) {
    this._stopHeartbeat();
    this._welcomed = false;
    if (this.state === "closed") return;
    this.closeCode = code;
    this.closeReason = reason;
    const policy = reconnectPolicy(code);
    // Calls that were sent are lost with the socket; retried ones go back in the outbox, in order.
    const retried = [];
    for (const call of this._calls.values()) {
      if (!call.sent || call.settled) continue;
      if (policy === "drop_message" && call === this._lastSent) {
        call.fail(new TooLarge("the server closed with 1009: the message was too big"));
      } else if (call.retry) {
        call.sent = false;
        retried.push({ text: call.text, call });
      } else {
        call.fail(new ConnectionLost("the connection dropped before the answer came"));
      }
    }
    this._outbox.unshift(...retried);
    this._lastSent = null;
    if (!this.reconnect || policy === "never") {
      this._finish(code, reason, true);
      return;
    }
    if (this.attempt >= this.maxRetries) {
      this._finish(code, `no connection after ${this.attempt} retries`, true);
      return;
    }
    const delay = this.retryInterval != null
      ? this.retryInterval + (policy === "long_delay" ? this.longDelay : 0)
      : backoffDelay(this.attempt, {
        initial: this.backoffInitial,
        max: this.backoffMax,
        longDelay: this.longDelay,
        policy,
        random: this._random,
      });
    this.attempt += 1;
    this._setState(this.clientId ? "reconnecting" : "connecting");
    this._emit("ws:offline", { code, reason, delay }, {});
    this._urlIndex = (this._urlIndex + 1) % this.urls.length;
    this._retryTimer = this._later(() => this._open(), delay * 1000);
  }

  /** @private The browser says the network is back: skip the rest of the backoff wait. */
  _retryNow() {
    if (this._retryTimer !== null && this.state !== "closed") {
      this._cancel(this._retryTimer);
      this._open();
    }
  }

  /** @private @param {number} code @param {string} reason @param {boolean} announce */
  _finish(code, reason, announce) {
    if (this.state === "closed") return;
    this.closeCode = code;
    this.closeReason = reason;
    this._stopHeartbeat();
    for (const timer of this._timers) this._clearTimeout(timer);
    this._timers.clear();
    this._retryTimer = null;
    globalThis.removeEventListener?.("online", this._onOnline);
    const error = new ConnectionLost(`the connection closed (${code}: ${reason})`);
    for (const call of this._calls.values()) call.fail(error);
    this._outbox.length = 0;
    this._ws = null;
    this._welcomed = false;
    this._setState("closed");
    // Browsers do not show a refused upgrade's HTTP status: name the URL and the likely mistake.
    const hint = code === CloseCode.ABNORMAL && !this.clientId
      ? "; no WebSocket answered there (is websocket=True set on the server, and is the path right?)"
      : "";
    this._readyReject?.(new ConnectionLost(`could not connect to ${this.url} (${code}: ${reason})${hint}`));
    if (announce) this._emit("ws:close", { code, reason }, {});
  }

  // --- internals: heartbeats -------------------------------------------------------------

  /** @private */
  _startHeartbeat() {
    const period = this.welcome.heartbeat;
    if (!this.heartbeat || typeof period !== "number" || period <= 0) return;
    const beat = () => {
      this._beatTimer = null;
      if (!this.connected) return;
      const ws = this._ws;
      let id;
      try {
        ({ id } = this._request("ws:heartbeat", null, false, false));
      } catch {
        return; // a full outbox: the connection is busy anyway
      }
      const call = /** @type {Pending} */ (this._calls.get(id));
      // An answer that does not come within a period means a dead (half-open) connection.
      const deadline = this._later(() => {
        if (!call.settled && this._ws === ws && ws) {
          this._deadSocket = true;
          ws.close(4000, "heartbeat timeout");
        }
      }, period * 1000);
      call.promise.then(
        () => {
          this._cancel(deadline);
          this._forget(id, call);
          if (this._ws === ws) this._beatTimer = this._later(beat, period * 1000);
        },
        () => {
          this._cancel(deadline);
          this._forget(id, call);
        },
      );
    };
    this._beatTimer = this._later(beat, period * 1000);
  }

  /** @private */
  _stopHeartbeat() {
    if (this._beatTimer !== null) this._cancel(this._beatTimer);
    this._beatTimer = null;
  }

  // --- internals: incoming ---------------------------------------------------------------

  /** @private @param {string} text */
  _onText(text) {
    /** @type {any} */
    let value = text;
    try {
      value = JSON.parse(text);
    } catch {
      // not JSON: the raw listeners get the text
    }
    for (const listener of [...this._raw]) {
      try {
        listener(value);
      } catch (error) {
        console.error("monument_ws: a raw listener failed", error);
      }
    }
    if (value === text || !isObject(value) || Array.isArray(value)) {
      console.warn("monument_ws: the server sent a frame that is not a JSON object");
      return;
    }
    /** @type {Record<string, any>} */
    let frame = value;
    if (!this._welcomed) {
      if (classify(frame) === "welcome") this._onWelcome(frame);
      return;
    }
    if (this._incoming.length) {
      try {
        for (const hook of [...this._incoming]) frame = hooked(hook, frame);
      } catch (error) {
        this._refuse(frame, error);
        return;
      }
    }
    this._dispatch(frame);
  }

  /**
   * An incoming hook refused `frame`: answer or fail whatever waited for it.
   * @param {Record<string, any>} frame @param {unknown} error
   * @private
   */
  _refuse(frame, error) {
    this.refused += 1;
    const known = error instanceof MonumentError;
    if (!known) console.error("monument_ws: an incoming frame hook failed", error);
    const refusal = known ? error : new InternalError("internal error");
    if (Number.isSafeInteger(frame.call) && frame.event !== "ws:error") {
      try {
        this._toOutbox(JSON.stringify({ event: "ws:error", call: frame.call, error: { code: refusal.code, message: refusal.message } }), null);
      } catch {
        // a full outbox: the server's call times out
      }
      return;
    }
    const call = typeof frame.id === "number" ? this._calls.get(frame.id) : undefined;
    call?.fail(refusal);
  }

  /** @private @param {Record<string, any>} frame */
  _onWelcome(frame) {
    const reconnected = this.clientId !== null;
    this.welcome = isObject(frame.data) ? frame.data : {};
    this.clientId = this.welcome.client_id ?? null;
    this.resume = this.welcome.resume ?? null;
    this._welcomed = true;
    this.attempt = 0;
    this._setState("open");
    this._setStage(typeof this.welcome.stage === "string" ? this.welcome.stage : null);
    // Resubscribe ahead of anything put in the outbox while offline, so it meets live channels.
    const subscriptions = [...this._subscriptions.values()].reverse();
    if (reconnected) for (const subscription of subscriptions) this._rejoin(subscription);
    this._welcomeReserved(this.welcome.channels);
    this._flush();
    this._startHeartbeat();
    this._readyResolve?.();
    this._emit(reconnected ? "ws:reconnect" : "ws:connect", this.welcome, frame);
  }

  /** @private @param {Record<string, any>} frame */
  _dispatch(frame) {
    const kind = classify(frame);
    const call = typeof frame.id === "number" ? this._calls.get(frame.id) : undefined;
    // A late answer (to a call that timed out, a stream left early) finds no call and is dropped.
    switch (kind) {
      case "call":
        this._perform(frame);
        return;
      case "error":
        if (call) call.fail(fromErrorFrame(frame.error));
        // An error about one of our answers (call) or a late one (id) has nobody waiting.
        else if (!("call" in frame) && !isRequestId(frame.id)) this._emit("ws:error", frame.error, frame);
        return;
      case "chunk":
      case "end":
      case "reply":
        if (call) this._settle(call, kind, frame);
        return;
      case "publication":
        this._publication(frame);
        return;
      case "push":
        this._push(frame);
        return;
      default:
    }
  }

  /**
   * @param {Pending} call @param {"chunk" | "end" | "reply"} kind @param {Record<string, any>} frame
   * @private
   */
  _settle(call, kind, frame) {
    let value = frame.data;
    if (frame.sync !== undefined && kind !== "end") {
      try {
        value = call.sync = applySync(call.sync, frame.sync, frame.data);
      } catch (error) {
        call.fail(new BadFrame(`cannot apply the SYNC reply: ${/** @type {Error} */ (error).message}`));
        return;
      }
    }
    call.push({ kind, value });
  }

  /** @private @param {Record<string, any>} frame */
  _publication(frame) {
    const subscription = this._subscriptionOf(frame.channel);
    if (!subscription || frame.offset <= subscription.offset) return; // a duplicate after recovery
    if (subscription.held) {
      subscription.held.push(frame);
      return;
    }
    subscription.offset = frame.offset;
    try {
      const result = subscription.handler({
        channel: frame.channel,
        event: String(frame.event),
        data: frame.data,
        offset: frame.offset,
      });
      if (result instanceof Promise) result.catch((error) => console.error(`a handler of ${frame.channel} failed`, error));
    } catch (error) {
      console.error(`monument_ws: a subscription handler of ${frame.channel} failed`, error);
    }
  }

  /** @private @param {Record<string, any>} frame */
  _push(frame) {
    const event = frame.event;
    const data = isObject(frame.data) ? frame.data : {};
    const channel = typeof frame.channel === "string" ? frame.channel : data.channel;
    const subscription = typeof channel === "string" ? this._subscriptions.get(channel) : undefined;
    if (event === "ws:enqueue" && Number.isSafeInteger(frame.seq)) {
      this._toInbox(frame);
      return;
    }
    if (event === "ws:knock") {
      try {
        this._toOutbox(JSON.stringify({ event: "ws:heartbeat", data: { channels: [channel] } }), null);
      } catch {
        // a full outbox: presence learns we are alive from what is in it
      }
      return;
    }
    if (event === "ws:resubscribe") {
      // The server lost the history between us (e.g. a broker restart): offsets
      // start again in a new epoch, so forget ours and rejoin fresh (a reserved channel too).
      // When the push names the new epoch and offset, the server goes on delivering from
      // there on this subscription: take that position and stay (not recovered).
      const rejoining = subscription ?? (typeof channel === "string" && channel.startsWith("$") ? this._subscriptionOf(channel) : undefined);
      if (rejoining) {
        const info = /** @type {{epoch?: unknown, offset?: unknown}} */ (data ?? {});
        if (typeof info.epoch === "string" && Number.isInteger(info.offset)) {
          rejoining.offset = /** @type {number} */ (info.offset);
          rejoining.epoch = info.epoch;
          rejoining.recovered = false;
          const resubscribed = { channel: rejoining.channel, recovered: false };
          rejoining._emit("resubscribed", resubscribed);
          this._emit("ws:resubscribed", resubscribed, {});
          return;
        }
        rejoining.offset = 0;
        rejoining.epoch = null;
        this._rejoin(rejoining);
      }
      return;
    }
    if (event === "ws:revoked" && subscription) {
      this._subscriptions.delete(subscription.channel);
      subscription.active = false;
      subscription._emit("revoked", data);
    } else if ((event === "ws:join" || event === "ws:leave" || event === "ws:member") && subscription) {
      subscription._emit(event.slice(3), data);
    }
    let value = frame.data;
    if (frame.sync !== undefined) {
      try {
        value = applySync(this._synced.get(event), frame.sync, frame.data);
      } catch (error) {
        this._emit("ws:error", { code: "bad_frame", message: `cannot apply SYNC of ${event}: ${/** @type {Error} */ (error).message}` }, frame);
        return;
      }
      this._synced.set(event, value);
    }
    this._emit(event, value, frame);
  }

  /** @private @param {Record<string, any>} frame */
  async _perform(frame) {
    const number = frame.call;
    const handler = typeof frame.event === "string" ? this._performers.get(frame.event) : undefined;
    let answer;
    try {
      if (!handler) throw new NotFound(`this client performs no ${JSON.stringify(frame.event)}`);
      const data = await handler(frame.data, frame);
      answer = JSON.stringify({ event: "ws:result", call: number, data: data ?? null });
    } catch (error) {
      const known = error instanceof MonumentError;
      if (!known) console.error(`monument_ws: performing ${frame.event} failed`, error);
      answer = JSON.stringify({
        event: "ws:error",
        call: number,
        error: known ? { code: error.code, message: error.message } : { code: "internal", message: "internal error" },
      });
    }
    try {
      this._toOutbox(answer, null);
    } catch {
      // a full outbox or an answer too large: the server's call times out
    }
  }

  /** @private @param {string} event @param {unknown} data @param {Record<string, any>} frame */
  _emit(event, data, frame) {
    for (const listener of [...(this._listeners.get(event) ?? [])]) {
      try {
        const result = listener(data, frame);
        if (result instanceof Promise) result.catch((error) => console.error(`a listener of ${event} failed`, error));
      } catch (error) {
        console.error(`monument_ws: a listener of ${event} failed`, error);
      }
    }
  }

  /** @private @param {() => void} fn @param {number} ms */
  _later(fn, ms) {
    const handle = this._setTimeout(() => {
      this._timers.delete(handle);
      fn();
    }, ms);
    this._timers.add(handle);
    return handle;
  }

  /** @private @param {any} handle */
  _cancel(handle) {
    this._timers.delete(handle);
    this._clearTimeout(handle);
  }
}
