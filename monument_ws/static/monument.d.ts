/**
 * Rebuild the typed error of an error frame's `error` object (`remote` set).
 * Unknown or malformed codes become `InternalError`: reading a server's error never fails.
 * @param {unknown} error
 * @returns {MonumentError}
 */
export function fromErrorFrame(error: unknown): MonumentError;
/**
 * The frame of a tell, or of a call with `id`: `event`, `data` and the `extra` top-level
 * keys, which a server hands to passthrough receivers as part of the message (monument's
 * `{"event": "authorize", "credentialsObj": {...}}`). Throws TypeError for `extra` that is
 * not a plain object or that uses a reserved key, before anything enters the outbox.
 * @param {string} event @param {unknown} data @param {Record<string, unknown>} [extra]
 * @param {number} [id]
 * @returns {Record<string, unknown>}
 */
export function frameOf(event: string, data: unknown, extra?: Record<string, unknown>, id?: number): Record<string, unknown>;
/**
 * What the client does after a close with `code` (the close-code table of docs/protocol.md).
 * Codes outside the table (e.g. a proxy's 1012) reconnect with backoff.
 * @param {number | null | undefined} code
 * @returns {ReconnectPolicy}
 */
export function reconnectPolicy(code: number | null | undefined): ReconnectPolicy;
/**
 * Seconds to wait before reconnect attempt number `attempt` (0 first):
 * full jitter, `random() * min(max, initial * 2 ** attempt)`, plus `longDelay`
 * after a 4029 (rate limited).
 * @param {number} attempt
 * @param {{ initial: number, max: number, longDelay?: number, policy?: ReconnectPolicy, random?: () => number }} options
 * @returns {number}
 */
export function backoffDelay(attempt: number, { initial, max, longDelay, policy, random }: {
    initial: number;
    max: number;
    longDelay?: number;
    policy?: ReconnectPolicy;
    random?: () => number;
}): number;
/**
 * The tokens of an RFC 6901 JSON Pointer ("" is the whole document).
 * @param {string} pointer
 * @returns {string[]}
 */
export function parsePointer(pointer: string): string[];
/**
 * Apply an RFC 6902 JSON Patch (add, remove, replace, move, copy, test) and
 * return the new document. `doc` is never modified: a patch that fails
 * half-way leaves the caller's object as it was.
 * @param {unknown} doc
 * @param {ReadonlyArray<PatchOperation>} ops
 * @returns {any}
 */
export function applyPatch(doc: unknown, ops: ReadonlyArray<PatchOperation>): any;
/**
 * JSON equality (objects by keys, arrays by order).
 * @param {unknown} a @param {unknown} b
 * @returns {boolean}
 */
export function deepEqual(a: unknown, b: unknown): boolean;
/**
 * The object after a SYNC frame: `mode` "full" replaces it, "patch" applies `data` to `current`.
 * @param {unknown} current @param {unknown} mode @param {unknown} data
 */
export function applySync(current: unknown, mode: unknown, data: unknown): any;
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
export function classify(frame: unknown): "invalid" | "welcome" | "error" | "call" | "publication" | "chunk" | "end" | "reply" | "push";
/**
 * Whether `value` is a valid request id: an integer 0..2^53−1 or a string of 1..64 characters.
 * @param {unknown} value
 * @returns {value is number | string}
 */
export function isRequestId(value: unknown): value is number | string;
/**
 * Parse one text frame from the server; null when it is not a JSON object.
 * @param {string} text
 * @returns {Record<string, any> | null}
 */
export function decodeFrame(text: string): Record<string, any> | null;
/**
 * The URL to open: `url` resolved against the page (http → ws, https → wss),
 * with `resume=<secret>` when reconnecting.
 * @param {string | URL} url @param {string | null} [resume] @param {string} [base]
 */
export function socketUrl(url: string | URL, resume?: string | null, base?: string): string;
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
export const VERSION: "0.1.0";
export const PROTOCOL_VERSION: 1;
export const SUBPROTOCOL: "monument.v1";
/**
 * Root of every monument_ws error; `code` is the protocol error code.
 * `remote` is true when the error came from the server in an error frame.
 */
export class MonumentError extends Error {
    /** @type {string} */
    static code: string;
    /**
     * @param {string} [message]
     * @param {{ data?: unknown, remote?: boolean, code?: string }} [options] `code` overrides the
     *   class's (bad_json and missing_event are BadFrame errors that keep their own code)
     */
    constructor(message?: string, options?: {
        data?: unknown;
        remote?: boolean;
        code?: string;
    });
    /** @type {string} */
    code: string;
    /** @type {boolean} */
    remote: boolean;
    /** @type {unknown} */
    data: unknown;
}
export class BadFrame extends MonumentError {
}
export class DuplicateId extends MonumentError {
}
export class NotFound extends MonumentError {
}
export class Unauthorized extends MonumentError {
}
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
    constructor(message?: string, options?: {
        data?: unknown;
        remote?: boolean;
        code?: string;
        stage?: string;
    });
    /** @type {string} */
    stage: string;
}
export class Forbidden extends MonumentError {
}
export class TooLarge extends MonumentError {
}
export class RateLimited extends MonumentError {
}
/** The outbox is full; nothing already in it was dropped. (The name predates the outbox's.) */
export class QueueFull extends RateLimited {
}
export class Timeout extends MonumentError {
}
export class Unavailable extends MonumentError {
}
/** The socket closed (or the client was closed) before the answer came. */
export class ConnectionLost extends Unavailable {
}
export class Cancelled extends MonumentError {
}
export class InternalError extends MonumentError {
}
/**
 * Top-level keys protocol version 1 gives a meaning in some frame (the Python
 * `protocol.RESERVED_KEYS`); a call's or a tell's `extra` keys may use any other name.
 */
export const RESERVED_KEYS: readonly string[];
/** Close codes of the protocol. */
export const CloseCode: Readonly<{
    NORMAL: 1000;
    GOING_AWAY: 1001;
    PROTOCOL_ERROR: 1002;
    ABNORMAL: 1006;
    INVALID_DATA: 1007;
    POLICY: 1008;
    TOO_BIG: 1009;
    INTERNAL: 1011;
    SLOW_CONSUMER: 4008;
    RATE_LIMITED: 4029;
    UNAUTHORIZED: 4401;
    FORBIDDEN: 4403;
    KICKED: 4409;
}>;
/** A JSON Patch could not be applied (a failed `test`, a missing path, a bad operation). */
export class PatchError extends Error {
    /** @param {string} message */
    constructor(message: string);
}
/** A channel this client is subscribed to; it survives reconnects. */
export class Subscription {
    /**
     * @param {Client} client @param {string} channel
     * @param {(message: Message) => unknown} handler @param {SubscribeOptions} options
     */
    constructor(client: Client, channel: string, handler: (message: Message) => unknown, options: SubscribeOptions);
    client: Client;
    channel: string;
    handler: (message: Message) => unknown;
    options: SubscribeOptions;
    /** Newest publication received; publications at or below it are dropped as duplicates. */
    offset: number;
    /** @type {string | null} the history `offset` belongs to */
    epoch: string | null;
    /** @type {boolean | null} after a (re)subscribe: whether every missed publication was replayed */
    recovered: boolean | null;
    active: boolean;
    /** @private @type {Map<string, Set<Function>>} */
    private _listeners;
    /** @type {Record<string, any>[] | null} publications held while a reserved channel recovers */
    held: Record<string, any>[] | null;
    /**
     * Observe `"join"` / `"leave"` (`{client_id}`, in namespaces with join_leave),
     * `"member"` (a `PresenceMember` whose `state` is the transition: connected, disconnected,
     * reconnected or removed; in namespaces with presence_events),
     * `"resubscribed"` (`{recovered}` after a reconnect) and `"revoked"` (`{reason}`).
     * Returns a function that removes the listener.
     * @param {"join" | "leave" | "member" | "resubscribed" | "revoked"} what @param {(data: any) => unknown} listener
     */
    on(what: "join" | "leave" | "member" | "resubscribed" | "revoked", listener: (data: any) => unknown): () => void;
    /** Hand `data` to the `what` listeners (the client calls it). @param {string} what @param {unknown} data */
    _emit(what: string, data: unknown): void;
    /** Who is in the channel (namespaces with presence on). @param {{ limit?: number, cursor?: string }} [page] */
    presence(page?: {
        limit?: number;
        cursor?: string;
    }): Promise<PresencePage>;
    unsubscribe(): Promise<void>;
}
/** A running `client.every(...)`; `cancel()` stops it (closing the client does too). */
export class Periodic {
    /** @param {() => void} cancel */
    constructor(cancel: () => void);
    /** @private */
    private _cancel;
    cancelled: boolean;
    cancel(): void;
}
/** A monument_ws connection that reconnects, resumes, and keeps what it sends while offline. */
export class Client {
    /**
     * @param {string | URL | Array<string | URL>} [url="/ws"] the socket URL, or every URL the
     *   client may use (each process or load balancer), tried in turn; relative URLs resolve
     *   against the page
     * @param {ClientOptions} [options]
     */
    constructor(url?: string | URL | Array<string | URL>, options?: ClientOptions);
    /** @type {Array<string | URL>} every server URL this client may use, in the order tried */
    urls: Array<string | URL>;
    /** @private */
    private _urlIndex;
    reconnect: boolean;
    backoffInitial: number;
    backoffMax: number;
    longDelay: number;
    maxRetries: number;
    /** @type {number | null} seconds every reconnect attempt waits instead of the backoff (null: the backoff) */
    retryInterval: number | null;
    outboxLimit: number;
    callTimeout: number;
    heartbeat: boolean;
    peerQueueSize: number;
    peerQueueTtl: number;
    /** Peer-queue messages dropped by `peerQueueSize` or `peerQueueTtl` before they were consumed. */
    peerQueueDropped: number;
    /** Incoming frames refused by a hook. */
    refused: number;
    /** @private */
    private _clock;
    /** @private */
    private _WebSocket;
    /** @private */
    private _random;
    /** @private */
    private _setTimeout;
    /** @private */
    private _clearTimeout;
    /** @type {string | null} issued by the server; kept across reconnects */
    clientId: string | null;
    /** @type {string | null} */
    resume: string | null;
    /** @type {Record<string, any>} the data of the last ws:welcome */
    welcome: Record<string, any>;
    /** @type {ConnectionState} */
    state: ConnectionState;
    /** @type {number | null} */
    closeCode: number | null;
    closeReason: string;
    /** Reconnect attempts since the last welcome. */
    attempt: number;
    /**
     * The auth stage as the server last reported it (the welcome's `stage`, then each
     * `auth()` answer); null before the first welcome. `ws:stage` is emitted when it changes.
     * @type {string | null}
     */
    stage: string | null;
    /** @private @type {WebSocket | null} */
    private _ws;
    /** @private */
    private _welcomed;
    /** @private */
    private _nextId;
    /** @private @type {Map<number, Pending>} */
    private _calls;
    /** @private @type {Array<{ text: string, call: Pending | null }>} */
    private _outbox;
    /** @private @type {Map<string, Set<Listener>>} */
    private _listeners;
    /** @private @type {Set<(frame: any) => unknown>} */
    private _raw;
    /** @private @type {FrameHook[]} */
    private _incoming;
    /** @private @type {FrameHook[]} */
    private _outgoing;
    /** @private @type {Array<{ data: any, seq: number, expires: number }>} peer-queue messages for `consume()` */
    private _inbox;
    /** The highest peer-queue seq received: the server never sends it again. @private */
    private _inboxLast;
    /** @private @type {Map<string, (data: any, frame: Record<string, any>) => unknown>} */
    private _performers;
    /** @private @type {Map<string, Subscription>} */
    private _subscriptions;
    /** @private @type {Map<string, Subscription>} the reserved channels by kind (user, session) */
    private _reserved;
    /** @private @type {Record<string, Set<(message: Message) => unknown>>} */
    private _reservedHandlers;
    /** @private @type {Map<string, unknown>} */
    private _synced;
    /** @private @type {Set<any>} */
    private _timers;
    /** @private @type {any} */
    private _retryTimer;
    /** @private @type {any} */
    private _beatTimer;
    /** @private */
    private _lastSent;
    /** @private */
    private _deadSocket;
    /** @type {Promise<void>} resolves at the first welcome; rejects if the client closes first */
    ready: Promise<void>;
    /** @private */
    private _readyResolve;
    /** @private */
    private _readyReject;
    /** @private */
    private _onOnline;
    /** Open the connection (once); resolves at the first welcome. */
    connect(): Promise<void>;
    /** Close for good (code 1000): no reconnect; waiting calls fail with ConnectionLost. */
    close(code?: number, reason?: string): void;
    /** The server URL in use (or being tried) now: one of `urls`. */
    get url(): string | URL;
    get connected(): boolean;
    /**
     * Frames in the outbox: made but not yet written to a socket, because the client is offline
     * or was not welcomed yet (at most `outboxLimit`).
     */
    get outboxLength(): number;
    /** @deprecated until 1.0: `outboxLength` */
    get queued(): number;
    /** @deprecated until 1.0: `outboxLimit` */
    set queueLimit(value: number);
    /** @deprecated until 1.0: `outboxLimit` */
    get queueLimit(): number;
    /** @deprecated until 1.0: `peerQueueSize` */
    set queueSize(value: number);
    /** @deprecated until 1.0: `peerQueueSize` */
    get queueSize(): number;
    /** @deprecated until 1.0: `peerQueueTtl` */
    set queueTtl(value: number);
    /** @deprecated until 1.0: `peerQueueTtl` */
    get queueTtl(): number;
    /** @deprecated until 1.0: `peerQueueDropped` */
    set queueDropped(value: number);
    /** @deprecated until 1.0: `peerQueueDropped` */
    get queueDropped(): number;
    /** @returns {Record<string, Subscription>} */
    get subscriptions(): Record<string, Subscription>;
    /**
     * Send a request and resolve with its reply's data (for a SYNC reply: the current object).
     * Rejects with the server's typed error (`remote` true), `Timeout`, `Cancelled`,
     * `ConnectionLost`, `QueueFull` or `TooLarge`.
     * @param {string} event @param {unknown} [data] @param {CallOptions} [options]
     * @returns {Promise<any>}
     */
    call(event: string, data?: unknown, options?: CallOptions): Promise<any>;
    /**
     * Send without expecting a reply (kept in the outbox while offline). Throws QueueFull (the
     * outbox is full), TooLarge, or TypeError for an `extra` key the protocol reserves.
     * @param {string} event @param {unknown} [data] @param {TellOptions} [options]
     */
    tell(event: string, data?: unknown, options?: TellOptions): void;
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
    auth(stage: string, payload?: Record<string, unknown>, options?: {
        timeout?: number | null;
    }): Promise<any>;
    /**
     * Iterate over a streamed reply's chunks (a plain reply is the only item).
     * Leaving the loop early (`break`, an exception) cancels it on the server.
     * The request is sent when iteration starts.
     * @param {string} event @param {unknown} [data]
     * @returns {AsyncGenerator<any, void, undefined>}
     */
    stream(event: string, data?: unknown): AsyncGenerator<any, void, undefined>;
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
    on(event: string, listener: Listener): () => void;
    /** @param {string} event @param {Listener} listener */
    off(event: string, listener: Listener): void;
    /**
     * Call `listener(frame)` with every frame from the server, the welcome included, before the
     * hooks and dispatch: the decoded JSON value, or the raw text when it is not JSON. It cannot
     * change or refuse frames; one that throws is logged and the others still run.
     * Returns a function that removes it.
     * @param {(frame: any) => unknown} listener
     */
    listen(listener: (frame: any) => unknown): () => void;
    /**
     * Run `hook(frame)` on every frame from the server after the welcome, before dispatch, in
     * the order the hooks were added (see `FrameHook`). Hooks are synchronous. Throwing refuses
     * the frame and counts it in `refused`: a server call is answered with `ws:error` and the
     * error's code, a reply (or a stream's chunk) rejects its call with the error, anything else
     * is dropped. An error that is not a `MonumentError` is logged and refuses as `internal`.
     * Returns a function that removes the hook.
     * @param {FrameHook} hook
     */
    incoming(hook: FrameHook): () => void;
    /**
     * Run `hook(frame)` on every frame before it enters the outbox — calls, tells, streams,
     * subscribes, heartbeats, cancels, answers to the server's calls — in the order the hooks were
     * added. What it throws is thrown by the `tell` (or rejects the `call`) that sent the frame,
     * and nothing enters the outbox. A call sent again after a reconnect (`retry: true`) goes as the hooks
     * left it; they do not run twice. Returns a function that removes the hook.
     * @param {FrameHook} hook
     */
    outgoing(hook: FrameHook): () => void;
    /**
     * Answer the server's calls of `event` with `handler(data)` (sync or async).
     * A MonumentError it throws is sent back with its code, anything else as
     * `internal`; calls of events nobody performs get `not_found`.
     * @param {string} event @param {(data: any, frame: Record<string, any>) => unknown} handler
     */
    perform(event: string, handler: (data: any, frame: Record<string, any>) => unknown): void;
    /**
     * Tell `event` every `interval` seconds (`data` may be a function called each
     * time); with `onResult` it is a call and its reply (or error) is passed to it.
     * @param {number} interval @param {string} event @param {unknown} [data]
     * @param {{ onResult?: (result: any) => unknown }} [options]
     */
    every(interval: number, event: string, data?: unknown, options?: {
        onResult?: (result: any) => unknown;
    }): Periodic;
    /**
     * The current object of a SYNC event (`{"sync": "full" | "patch"}` frames), or undefined.
     * @param {string} event
     */
    synced(event: string): unknown;
    /**
     * Stop the pushes of the live value `event` (`x:get:y`, asked without data) with
     * `ws:unwatch`; resolves with whether it was watched. A reconnect ends every watch: ask again.
     * @param {string} event @param {CallOptions} [options]
     * @returns {Promise<boolean>}
     */
    unwatch(event: string, options?: CallOptions): Promise<boolean>;
    /**
     * Queue `data` for the server (its `socket.consume()` takes it); resolves with its seq once the
     * message is stored in the server's broker (for the server's `peer_queue_ttl` seconds,
     * reachable from any process). Kept in the outbox while offline like any call; rejects like
     * `call`.
     * @param {unknown} [data] @param {CallOptions} [options]
     * @returns {Promise<number>}
     */
    enqueue(data?: unknown, options?: CallOptions): Promise<number>;
    /**
     * Take the oldest message the server queued for this client that `accept(data)` accepts
     * (any, without `accept`); null when there is none. Messages queued while the client was
     * away arrive after it reconnects.
     * @param {(data: any) => boolean} [accept]
     * @returns {Queued | null}
     */
    consume(accept?: (data: any) => boolean): Queued | null;
    /** How many peer-queue messages wait in the inbox for `consume()`. */
    get enqueued(): number;
    /** @private @param {Record<string, any>} frame a `ws:enqueue` push with its integer `seq` */
    private _toInbox;
    /** @private */
    private _expireInbox;
    /**
     * Subscribe to `channel`; `handler(message)` gets each publication in offset order.
     * After every reconnect the client resubscribes by itself with `since`, so missed
     * publications are replayed (see `Subscription.recovered`). Rejects with the
     * server's error (e.g. Forbidden) if refused.
     * @param {string} channel @param {(message: Message) => unknown} handler @param {SubscribeOptions} [options]
     * @returns {Promise<Subscription>}
     */
    subscribe(channel: string, handler: (message: Message) => unknown, options?: SubscribeOptions): Promise<Subscription>;
    /** @param {string} channel */
    unsubscribe(channel: string): Promise<void>;
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
    publish(channel: string, event: string, data?: unknown, options?: PublishOptions): Promise<number>;
    /**
     * Call `handler(message)` with every publication to this client's user channel
     * (`$user:<id>`, the server's `publish_to_user`), in offset order, across reconnects
     * (what was published while away is recovered from the channel's history).
     * Returns a function that removes the handler.
     * @param {(message: Message) => unknown} handler
     * @returns {() => void}
     */
    onUser(handler: (message: Message) => unknown): () => void;
    /**
     * Like `onUser`, for this client's session channel (`$session:<hash>`, the server's
     * `publish_to_session`).
     * @param {(message: Message) => unknown} handler
     * @returns {() => void}
     */
    onSession(handler: (message: Message) => unknown): () => void;
    /**
     * Remove a handler `onUser` added (as the function it returned does).
     * @param {(message: Message) => unknown} handler
     */
    offUser(handler: (message: Message) => unknown): void;
    /**
     * Remove a handler `onSession` added.
     * @param {(message: Message) => unknown} handler
     */
    offSession(handler: (message: Message) => unknown): void;
    /** @private @param {"user" | "session"} kind @param {(message: Message) => unknown} handler */
    private _onReserved;
    /**
     * The subscription standing for a reserved channel of `kind`.
     * @private @param {string} kind @param {string} channel
     */
    private _reservedSubscription;
    /**
     * The welcome named the reserved channels the socket was subscribed to: follow them
     * from their offset, or recover what was missed since the last socket.
     * @private @param {unknown} named
     */
    private _welcomeReserved;
    /** @private @param {Subscription} subscription */
    private _recoverReserved;
    /**
     * The subscription a publication of `channel` belongs to: the application's, or a reserved
     * channel's (one joined after a ws:auth step is learnt from its first publication).
     * @private @param {unknown} channel
     */
    private _subscriptionOf;
    /**
     * Who is in `channel`: one page of members (follow `cursor` for more).
     * @param {string} channel @param {{ limit?: number, cursor?: string }} [page]
     * @returns {Promise<PresencePage>}
     */
    presence(channel: string, page?: {
        limit?: number;
        cursor?: string;
    }): Promise<PresencePage>;
    /**
     * One page of `channel`'s history window (`ws:history`): the latest publications, or those
     * `before` / `after` an offset, oldest first. Go on with `before: page.publications[0].offset`
     * (or `after:` the last one) and the first page's `epoch` while `more`. No subscription is
     * needed; the namespace's subscribe policy decides (`forbidden` otherwise).
     * @param {string} channel @param {HistoryOptions} [page]
     * @returns {Promise<HistoryPage>}
     */
    history(channel: string, page?: HistoryOptions): Promise<HistoryPage>;
    /**
     * @param {Subscription} subscription @param {boolean} first whether to put the request ahead of the outbox
     * @private
     */
    private _join;
    /** @private @param {Subscription} subscription */
    private _rejoin;
    /**
     * A request sent ahead of everything in the outbox (resubscribing after a reconnect).
     * @param {string} event @param {unknown} data
     * @private
     */
    private _callFirst;
    /**
     * @param {string} event @param {unknown} data @param {boolean} retry @param {boolean} stream
     * @param {boolean} [first] @param {Record<string, unknown>} [extra]
     * @private
     */
    private _request;
    /** @private @param {number} id @param {Pending} call */
    private _forget;
    /** @private @param {number} id @param {Pending} call */
    private _cancelRemote;
    /** @private @param {string} text @param {Pending | null} call @param {boolean} [first] */
    private _toOutbox;
    /** @private */
    private _flush;
    /** @private @param {ConnectionState} state */
    private _setState;
    /** @private @param {string | null} stage */
    private _setStage;
    /** @private */
    private _open;
    /** @private @param {number} code @param {string} reason */
    private _dropped;
    /** @private The browser says the network is back: skip the rest of the backoff wait. */
    private _retryNow;
    /** @private @param {number} code @param {string} reason @param {boolean} announce */
    private _finish;
    /** @private */
    private _startHeartbeat;
    /** @private */
    private _stopHeartbeat;
    /** @private @param {string} text */
    private _onText;
    /**
     * An incoming hook refused `frame`: answer or fail whatever waited for it.
     * @param {Record<string, any>} frame @param {unknown} error
     * @private
     */
    private _refuse;
    /** @private @param {Record<string, any>} frame */
    private _onWelcome;
    /** @private @param {Record<string, any>} frame */
    private _dispatch;
    /**
     * @param {Pending} call @param {"chunk" | "end" | "reply"} kind @param {Record<string, any>} frame
     * @private
     */
    private _settle;
    /** @private @param {Record<string, any>} frame */
    private _publication;
    /** @private @param {Record<string, any>} frame */
    private _push;
    /** @private @param {Record<string, any>} frame */
    private _perform;
    /** @private @param {string} event @param {unknown} data @param {Record<string, any>} frame */
    private _emit;
    /** @private @param {() => void} fn @param {number} ms */
    private _later;
    /** @private @param {any} handle */
    private _cancel;
}
export type PatchOperation = {
    op: "add" | "remove" | "replace" | "move" | "copy" | "test";
    path: string;
    value?: unknown;
    from?: string;
};
export type ReconnectPolicy = "never" | "jitter" | "backoff" | "drop_message" | "recover" | "long_delay";
export type ClientOptions = {
    /**
     * reconnect by itself after a drop (as the close code allows)
     */
    reconnect?: boolean | undefined;
    /**
     * seconds; the first backoff ceiling
     */
    backoffInitial?: number | undefined;
    /**
     * seconds; the largest backoff ceiling
     */
    backoffMax?: number | undefined;
    /**
     * seconds added after a 4029 (rate limited) close
     */
    longDelay?: number | undefined;
    /**
     * reconnect attempts in a row before giving up (closed with the
     * last attempt's code, e.g. 1006, and the reason "no connection after N retries")
     */
    maxRetries?: number | undefined;
    /**
     * seconds every reconnect attempt waits instead of the
     * backoff (null: the backoff; 4029 still adds `longDelay`)
     */
    retryInterval?: number | null | undefined;
    /**
     * frames the outbox holds (those not yet sent)
     */
    outboxLimit?: number | undefined;
    /**
     * default seconds a call waits (0: forever)
     */
    callTimeout?: number | undefined;
    /**
     * send ws:heartbeat every `heartbeat` seconds of the welcome, and
     * treat a heartbeat unanswered for that long as a dead connection
     */
    heartbeat?: boolean | undefined;
    /**
     * open at once (false: wait for `connect()`)
     */
    connect?: boolean | undefined;
    /**
     * the WebSocket class (tests inject a fake one)
     */
    WebSocket?: {
        new (url: string | URL, protocols?: string | string[]): WebSocket;
        prototype: WebSocket;
        readonly CONNECTING: 0;
        readonly OPEN: 1;
        readonly CLOSING: 2;
        readonly CLOSED: 3;
    } | undefined;
    /**
     * peer-queue messages kept for `consume()` (the oldest is dropped first)
     */
    peerQueueSize?: number | undefined;
    /**
     * seconds a peer-queue message waits for `consume()`
     */
    peerQueueTtl?: number | undefined;
    /**
     * seconds of a monotonic clock, for `peerQueueTtl` (tests inject one)
     */
    clock?: (() => number) | undefined;
    /**
     * random numbers in [0, 1) for the jitter (tests inject one)
     */
    random?: (() => number) | undefined;
    setTimeout?: ((fn: () => void, ms: number) => unknown) | undefined;
    clearTimeout?: ((handle: any) => void) | undefined;
    /**
     * deprecated until 1.0: `outboxLimit` (an old name wins over its new one)
     */
    queueLimit?: number | undefined;
    /**
     * deprecated until 1.0: `peerQueueSize`
     */
    queueSize?: number | undefined;
    /**
     * deprecated until 1.0: `peerQueueTtl`
     */
    queueTtl?: number | undefined;
};
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";
/**
 * One channel publication as a subscriber receives it.
 */
export type Message = {
    channel: string;
    event: string;
    data: any;
    /**
     * position in the channel's history
     */
    offset: number;
};
export type SubscribeOptions = {
    /**
     * given to the channel's subscription policy (e.g. a password)
     */
    query?: unknown;
    /**
     * shown in the presence list
     */
    label?: string | undefined;
    /**
     * shown in the presence list
     */
    meta?: Record<string, unknown> | undefined;
};
export type PublishOptions = {
    /**
     * leave this client out of its own publication
     */
    excludeSelf?: boolean | undefined;
    /**
     * 1 to 64 characters naming this message: a retry with the same key publishes once
     */
    idempotencyKey?: string | undefined;
};
export type PresenceMember = {
    client_id: string;
    user: string | null;
    label: string | null;
    meta: Record<string, unknown> | null;
    /**
     * in the list
     * `connected` or `disconnected`; a `member` event carries the transition
     */
    state: "connected" | "disconnected" | "reconnected" | "removed";
    /**
     * in a `member` event: the channel
     */
    channel?: string | undefined;
    first_seen: number;
    last_seen: number;
};
export type PresencePage = {
    count: number;
    members: PresenceMember[];
    /**
     * pass it back for the next page
     */
    cursor?: string | undefined;
};
export type HistoryOptions = {
    /**
     * the publications with a lower offset (paging back)
     */
    before?: number | undefined;
    /**
     * the publications with a higher offset (paging forward)
     */
    after?: number | undefined;
    /**
     * at most this many, 1 to 100 (the server's default: 50)
     */
    limit?: number | undefined;
    /**
     * the first page's epoch: another one answers an empty page
     */
    epoch?: string | undefined;
    /**
     * handed to the namespace's subscribe policy
     */
    query?: unknown;
};
export type HistoryPublication = {
    event: string;
    data: unknown;
    offset: number;
};
export type HistoryPage = {
    channel: string;
    epoch: string;
    /**
     * the channel's newest offset when the page was read
     */
    offset: number;
    /**
     * oldest first
     */
    publications: HistoryPublication[];
    /**
     * whether the window holds more that way
     */
    more: boolean;
};
export type CallOptions = {
    /**
     * seconds (default `callTimeout`; 0 or null: forever);
     * on expiry the call rejects with `Timeout` and the server is told to cancel
     */
    timeout?: number | null | undefined;
    /**
     * send again after a reconnect if the answer was lost
     */
    retry?: boolean | undefined;
    /**
     * aborting rejects with `Cancelled` and cancels on the server
     */
    signal?: AbortSignal | undefined;
    /**
     * top-level keys added beside `event` and `data`
     * (a key of `RESERVED_KEYS` throws TypeError)
     */
    extra?: Record<string, unknown> | undefined;
};
export type TellOptions = {
    /**
     * top-level keys added beside `event` and `data`,
     * handed to the server's passthrough receivers in `message` (a key of `RESERVED_KEYS` throws
     * TypeError)
     */
    extra?: Record<string, unknown> | undefined;
};
/**
 * The data of a `ws:stage` event.
 */
export type StageChange = {
    /**
     * the stage the server reports now
     */
    stage: string | null;
    /**
     * the stage before
     */
    previous: string | null;
};
export type Listener = (data: any, frame: Record<string, any>) => unknown;
/**
 * A frame middleware hook: it gets the decoded frame and may change it in place or return a
 * replacement object (null or undefined keeps the frame); throwing refuses the frame.
 */
export type FrameHook = (frame: Record<string, any>) => Record<string, any> | null | undefined | void;
/**
 * A message taken from the peer queue.
 */
export type Queued = {
    data: any;
    /**
     * its number in this client's queue (increasing)
     */
    seq: number;
};
