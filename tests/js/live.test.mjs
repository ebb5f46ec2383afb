// monument.js over real sockets: Node's WebSocket against a real server
// (tests/js/live_app.py: the demo app plus test handlers) on an ephemeral port.
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { pathToFileURL } from "node:url";

import net from "node:net";

import {
  AuthFailed, Client, ConnectionLost, Forbidden, NotFound, Timeout, TooLarge, Unauthorized,
} from "../../monument_ws/static/monument.js";
import { DEADLINE_MS, ROOT, needs, startServer } from "../browser/harness.mjs";

/** Poll `predicate` until true, failing after a generous deadline (never a speed claim). */
async function eventually(predicate, what) {
  const deadline = Date.now() + DEADLINE_MS;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** `promise`, or a failure naming `what` if it has not settled by a generous deadline. */
async function within(promise, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), DEADLINE_MS);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Import the one `js` block of docs/websockets.md that contains `marker`, with its import of
 * "/monument_ws/client.js" pointed at the repository's monument.js.
 */
async function docsExample(marker) {
  const docs = readFileSync(path.join(ROOT, "docs", "websockets.md"), "utf8");
  const blocks = [...docs.matchAll(/^```js\n(.*?)^```/gms)].map((m) => m[1]).filter((code) => code.includes(marker));
  assert.equal(blocks.length, 1, `one js block of the docs contains ${marker}`);
  const module = path.join(mkdtempSync(path.join(tmpdir(), "monument-docs-")), "example.mjs");
  const client = pathToFileURL(path.join(ROOT, "monument_ws", "static", "monument.js")).href;
  writeFileSync(module, blocks[0].replace('"/monument_ws/client.js"', JSON.stringify(client)));
  return import(module);
}

describe("the JS client against a real server", needs(globalThis.WebSocket ? null : "this Node has no WebSocket (run with --experimental-websocket)"), () => {
  let server;
  const clients = [];

  before(async () => {
    server = await startServer({
      app: "tests.js.live_app:create_app",
      args: ["--heartbeat", "0.3", "--max-message-size", "4096", "--secret", "live-test"],
    });
  });

  after(async () => {
    for (const client of clients) client.close();
    await server?.stop();
  });

  async function connect(options = {}) {
    const client = new Client(server.url("/ws"), { backoffInitial: 0.05, ...options });
    clients.push(client);
    if (options.connect !== false) await client.ready;
    return client;
  }

  test("a URL that is not a socket route rejects ready with the URL and the likely mistake", async () => {
    const url = server.url("/not-ws");
    const lost = new Client(url, { backoffInitial: 0.05, maxRetries: 1 });
    clients.push(lost);
    await assert.rejects(lost.ready, (e) => e instanceof ConnectionLost
      && e.message.startsWith(`could not connect to ${url} (1006: `)
      && e.message.endsWith("(is websocket=True set on the server, and is the path right?)"));
  });

  test("call, tell and typed errors", async () => {
    const client = await connect();
    assert.equal(client.state, "open");
    assert.deepEqual(await client.call("data:get:greeting"), { greeting: "Hello from monument_ws!" });
    assert.deepEqual(await client.call("echo", { x: [1, 2] }), { x: [1, 2] });
    client.tell("echo", "no reply wanted");
    await assert.rejects(client.call("no-such-event"), (e) => e instanceof NotFound && e.remote);
    assert.deepEqual(await client.call("ws:ping"), {});
  });

  test("live values: after a call of x:get:y without data, every later x:set:y until unwatch", async () => {
    const watcher = await connect();
    const setter = await connect();
    const seen = [];
    watcher.on("data:set:clock", (data) => seen.push(data));
    assert.equal(typeof (await watcher.call("data:get:clock")), "number");
    await setter.call("set-clock", 5);
    await eventually(() => seen.length === 1, "the live push");
    assert.deepEqual(seen, [5]);
    assert.equal(await watcher.unwatch("data:get:clock"), true);
    assert.equal(await watcher.unwatch("data:get:clock"), false);
    await setter.call("set-clock", 6);
    await watcher.call("ws:ping"); // answered after anything the server queued before it
    assert.deepEqual(seen, [5]);
  });

  test("a call that times out rejects with Timeout and cancels the handler on the server", async () => {
    const client = await connect();
    const before = await client.call("cancelled");
    await assert.rejects(client.call("slow", 30, { timeout: 0.2 }), Timeout);
    await eventually(async () => (await client.call("cancelled")) > before, "the server-side cancel");
  });

  test("a stream yields its chunks; leaving it early cancels it on the server", async () => {
    const client = await connect();
    const chunks = [];
    for await (const n of client.stream("countdown", 3)) chunks.push(n);
    assert.deepEqual(chunks, [3, 2, 1]);
    const before = await client.call("cancelled");
    for await (const n of client.stream("forever")) if (n === 3) break;
    await eventually(async () => (await client.call("cancelled")) > before, "the stream's cancel");
  });

  test("the page performs server calls; unknown ones are answered not_found", async () => {
    const client = await connect();
    client.perform("ask-name", () => "Ada");
    assert.equal(await client.call("greet-me"), "Hello, Ada!");
    assert.deepEqual(await client.call("ask", "nobody-performs-this"), { error: "not_found" });
  });

  test("channels: publish, subscribe with label and meta, presence, join and leave", async () => {
    const ada = await connect();
    const grace = await connect();
    const seen = [];
    const room = await ada.subscribe("chat", (m) => seen.push(m.data), { label: "Ada", meta: { lang: "en" } });
    const joins = [], leaves = [];
    room.on("join", (d) => joins.push(d.client_id));
    room.on("leave", (d) => leaves.push(d.client_id));
    const other = await grace.subscribe("chat", () => {}, { label: "Grace" });
    await eventually(() => joins.includes(grace.clientId), "Grace's join");
    const { count, members } = await room.presence();
    assert.equal(count, 2);
    const ada_ = members.find((m) => m.client_id === ada.clientId);
    assert.deepEqual([ada_.label, ada_.meta, ada_.state], ["Ada", { lang: "en" }, "connected"]);
    const offset = await grace.publish("chat", "message", { text: "hi" });
    await eventually(() => seen.length === 1, "the publication");
    assert.deepEqual(seen, [{ text: "hi" }]);
    assert.equal(room.offset, offset);
    await other.unsubscribe();
    await eventually(() => leaves.includes(grace.clientId), "Grace's leave");
    await room.unsubscribe();
  });

  test("publish with excludeSelf: the others get it, the publisher does not; a bad flag is refused", async () => {
    const me = await connect();
    const other = await connect();
    const mine = [], theirs = [];
    await me.subscribe("chat", (m) => mine.push(m.data));
    await other.subscribe("chat", (m) => theirs.push(m.data));
    const quiet = await me.publish("chat", "message", "quiet", { excludeSelf: true });
    const loud = await me.publish("chat", "message", "loud", { excludeSelf: false });
    assert.equal(loud, quiet + 1);
    await eventually(() => theirs.length === 2 && mine.length === 1, "both publications");
    assert.deepEqual(theirs, ["quiet", "loud"]);
    assert.deepEqual(mine, ["loud"]); // in offset order: "quiet" would have come first
    await assert.rejects(me.publish("chat", "message", 3, { excludeSelf: "yes" }), (error) => error.code === "bad_frame");
    await me.unsubscribe("chat");
    await other.unsubscribe("chat");
  });

  test("history: pages back from the latest and forward again; bad limits and closed channels are refused", async () => {
    const client = await connect();
    const channel = `hist:${Date.now()}`;
    assert.deepEqual(await client.history(channel), { channel, epoch: (await client.history(channel)).epoch, offset: 0, publications: [], more: false });
    assert.equal(await client.call("publish-many", { channel, count: 7 }), 7);
    const back = [];
    let page = await client.history(channel, { limit: 3 });
    const { epoch } = page;
    back.push(page.publications.map((p) => p.offset));
    while (page.more) {
      page = await client.history(channel, { limit: 3, before: page.publications[0].offset, epoch });
      back.push(page.publications.map((p) => p.offset));
    }
    assert.deepEqual(back, [[5, 6, 7], [2, 3, 4], [1]]);
    const forward = await client.history(channel, { after: 4, epoch });
    assert.deepEqual(forward.publications, [5, 6, 7].map((n) => ({ event: "item", data: n, offset: n })));
    assert.equal(forward.more, false);
    await assert.rejects(client.history(channel, { limit: 101 }), (error) => error.code === "bad_frame");
    await assert.rejects(client.history("closed:1"), (error) => error instanceof Forbidden);
  });

  test("publish with idempotencyKey: a retry with the same key publishes once and answers the first offset; a bad key is refused", async () => {
    const me = await connect();
    const got = [];
    await me.subscribe("chat", (m) => got.push(m.data));
    const first = await me.publish("chat", "message", "once", { idempotencyKey: "js-key-1" });
    const again = await me.publish("chat", "message", "once", { idempotencyKey: "js-key-1" });
    const other = await me.publish("chat", "message", "twice", { idempotencyKey: "js-key-2" });
    assert.equal(again, first);
    assert.equal(other, first + 1);
    await eventually(() => got.length === 2, "both publications");
    assert.deepEqual(got, ["once", "twice"]);
    await assert.rejects(me.publish("chat", "message", 3, { idempotencyKey: "x".repeat(65) }), (error) => error.code === "bad_frame");
    await me.unsubscribe("chat");
  });

  test("SYNC frames made by the server's jsonpatch arrive as whole objects", async () => {
    const client = await connect();
    const modes = [], boards = [];
    client.listen((frame) => frame.sync && modes.push(frame.sync));
    client.on("board", (value) => boards.push(value));
    const big = { cells: Array.from({ length: 40 }, (_, i) => ({ i, v: "." })), turn: "x" };
    const next = structuredClone(big);
    next.cells[3].v = "x";
    next.turn = "o";
    const last = structuredClone(next);
    last.cells.splice(10, 1);
    last.winner = null;
    for await (const chunk of client.stream("boards", [big, next, last])) {
      assert.fail(`the boards arrive as pushes, not as chunks: ${JSON.stringify(chunk)}`);
    }
    await eventually(() => boards.length === 3, "three boards");
    assert.deepEqual(modes, ["full", "patch", "patch"]);
    assert.deepEqual(boards, [big, next, last]);
    assert.deepEqual(client.synced("board"), last);
  });

  test("heartbeats: the client sends ws:heartbeat every period of the welcome and gets answers", async () => {
    const client = await connect();
    assert.equal(client.welcome.heartbeat, 0.3);
    let answered = 0;
    client.listen((frame) => frame.event === "ws:heartbeat" && "id" in frame && answered++);
    await eventually(() => answered >= 2, "two answered heartbeats");
    assert.equal(client.state, "open");
  });

  test("a server close with 1011: reconnects by itself, same client id, outbox flushed, recovered", async () => {
    const client = await connect();
    const id = client.clientId;
    const seen = [];
    const room = await client.subscribe("chat", (m) => seen.push(m.offset));
    const publisher = await connect();
    await publisher.subscribe("chat", () => {}); // chat lets its subscribers publish
    const states = [];
    client.on("ws:state", ({ state }) => states.push(state));
    const resubscribed = new Promise((resolve) => room.on("resubscribed", resolve));
    await assert.rejects(client.call("close-me", { code: 1011, reason: "test" }), ConnectionLost);
    // Offline now: this waits in the outbox and is sent after the reconnect.
    const offline = client.call("echo", "after");
    const offsets = [await publisher.publish("chat", "message", 1), await publisher.publish("chat", "message", 2)];
    assert.deepEqual(await resubscribed, { channel: "chat", recovered: true });
    assert.equal(await offline, "after");
    assert.equal(client.clientId, id);
    assert.deepEqual(states.slice(0, 2), ["reconnecting", "open"]);
    await eventually(() => seen.length >= 2, "the recovered publications");
    assert.deepEqual(seen.slice(-2), offsets);
  });

  test("several URLs (the docs' failover example): a client on a process that drains moves to the next one; one created while the first is down starts on the second", async () => {
    const { failover } = await docsExample("export async function failover(");
    const args = ["--heartbeat", "0.3", "--secret", "live-test"];
    const first = await startServer({ app: "tests.js.live_app:create_app", args });
    const second = await startServer({ app: "tests.js.live_app:create_app", args });
    const urls = [first.url("/ws"), second.url("/ws")];
    const log = console.log;
    console.log = () => {};
    try {
      const client = await within(failover(urls), "the first connection");
      clients.push(client);
      assert.deepEqual(client.urls, urls);
      assert.equal(client.url, urls[0]);
      const id = client.clientId;
      const offline = [];
      client.on("ws:offline", ({ code }) => offline.push([code, client.url]));
      const reconnected = new Promise((resolve) => client.on("ws:reconnect", resolve));
      await first.stop(); // SIGTERM: the first process drains its sockets with 1001
      await within(reconnected, "the reconnect to the second process");
      assert.equal(client.url, urls[1]);
      assert.equal(client.clientId, id, "resumed: the processes share the secret");
      assert.deepEqual(offline, [[1001, urls[0]]]);
      assert.equal(await client.call("connections", id), 1, "welcomed once by the second process");
      const late = await within(failover(urls), "the connection to the second process");
      clients.push(late);
      assert.equal(late.url, urls[1]);
      assert.equal(await late.call("echo", "served"), "served");
      assert.throws(() => new Client([]), TypeError);
    } finally {
      console.log = log;
      await first.stop();
      await second.stop();
    }
  });

  test("a server close with 4401 is final: no reconnect, ws:close with the reason", async () => {
    const client = await connect();
    const closed = new Promise((resolve) => client.on("ws:close", resolve));
    client.call("close-me", { code: 4401, reason: "credentials expired" }).catch(() => {});
    assert.deepEqual(await closed, { code: 4401, reason: "credentials expired" });
    assert.equal(client.state, "closed");
    await assert.rejects(client.call("echo", 1), ConnectionLost);
  });

  test("a kick (4409) is final: ws:close carries the reason and the client never reconnects", async () => {
    // random() = 0: a client that meant to reconnect would do it at once.
    const kicked = await connect({ random: () => 0 });
    const control = await connect({ random: () => 0 });
    const observer = await connect();
    const events = [];
    kicked.on("ws:offline", (d) => events.push(["offline", d]));
    kicked.on("ws:close", (d) => events.push(["close", d]));
    const closed = new Promise((resolve) => kicked.on("ws:close", resolve));
    const lost = assert.rejects(kicked.call("slow", 30), ConnectionLost);
    await observer.call("kick", { client_id: kicked.clientId, reason: "account suspended" });
    assert.deepEqual(await within(closed, "ws:close"), { code: 4409, reason: "account suspended" });
    await lost;
    assert.deepEqual([kicked.state, kicked.closeCode, kicked.closeReason], ["closed", 4409, "account suspended"]);
    // The control, with the same settings, is closed with 1011 and reconnects: the server's
    // welcome counter sees it. Once it has, a kicked client that reconnected would show too.
    control.call("close-me", { code: 1011, reason: "control" }).catch(() => {});
    await eventually(async () => (await observer.call("connections", control.clientId)) === 2, "the control's reconnect");
    assert.equal(await observer.call("connections", kicked.clientId), 1, "the kicked client came back");
    assert.deepEqual(events, [["close", { code: 4409, reason: "account suspended" }]]);
    await assert.rejects(kicked.call("echo", 1), ConnectionLost);
  });

  test("frame middleware: the server's stamp reaches incoming hooks, outgoing hooks stamp what the server gets, refusals", async () => {
    const client = await connect({ connect: false });
    const heard = [];
    client.listen((frame) => heard.push(frame));
    client.outgoing((frame) => {
      if (frame.data === "forbidden-word") throw new Forbidden("the client refuses to send that");
      frame.sender = "js-client";
    });
    const senders = new Set();
    client.incoming((frame) => {
      senders.add(frame.sender);
      if (frame.data === "secret" || frame.event === "classified") throw new Forbidden("screened");
      if (frame.event === "news") return { ...frame, data: { wrapped: frame.data } };
      return undefined;
    });
    const news = [];
    client.on("news", (data) => news.push(data));
    client.perform("confirm", () => "yes");
    client.perform("classified", () => "leaked");
    await client.connect();
    assert.deepEqual([heard[0].event, heard[0].sender], ["ws:welcome", "live-app"]);
    assert.equal(await client.call("whoami"), "js-client");
    assert.throws(() => client.tell("echo", "forbidden-word"), (e) => e instanceof Forbidden && !e.remote);
    // the server answered "secret"; the client's hook refused the reply
    await assert.rejects(client.call("echo", "secret"), (e) => e instanceof Forbidden && e.message === "screened" && !e.remote);
    assert.deepEqual(await client.call("ask", "confirm"), { result: "yes" });
    assert.deepEqual(await client.call("ask", "classified"), { error: "forbidden" }, "a refused server call is answered");
    await client.call("push-me", ["secret", 1]); // the pushes arrive before the reply
    assert.deepEqual(news, [{ wrapped: 1 }]);
    assert.equal(client.refused, 3);
    assert.deepEqual([...senders], ["live-app"]);
    assert.ok(heard.some((f) => f.event === "news" && f.data === "secret"), "listen() saw the refused push");
  });

  test("peer queues: what the server queued waits for consume(filter); what the client enqueues, the server consumes", async () => {
    const client = await connect();
    const observer = await connect();
    const pushed = [];
    client.on("ws:enqueue", (data) => pushed.push(data));
    assert.equal(client.consume(), null);
    const items = [{ kind: "invoice", n: 1 }, { kind: "note", n: 2 }, { kind: "invoice", n: 3 }];
    const seqs = await observer.call("queue-for", { client_id: client.clientId, items });
    await eventually(() => client.enqueued === 3, "three queued messages");
    assert.deepEqual(client.consume((d) => d.kind === "note"), { data: items[1], seq: seqs[1] });
    assert.deepEqual(client.consume(), { data: items[0], seq: seqs[0] });
    assert.equal(client.consume((d) => d.kind === "note"), null);
    assert.equal(client.enqueued, 1);
    const mine = [];
    for (const kind of ["a", "b", "a"]) mine.push(await client.enqueue({ kind }));
    assert.deepEqual(mine, [...mine].sort((x, y) => x - y));
    assert.deepEqual(await client.call("take", "b"), [2, { kind: "b" }]);
    assert.deepEqual(await client.call("take"), [1, { kind: "a" }]);
    assert.deepEqual(await client.call("take", "b"), [1, null]);
    assert.deepEqual(await client.call("take"), [0, { kind: "a" }]);
    assert.deepEqual(pushed, [], "queued messages are not pushes");
  });

  test("peer queue across a reconnect: each message reaches the client once, in order; queued= clears what it had", async () => {
    const client = await connect({ random: () => 0 });
    const observer = await connect();
    const id = client.clientId;
    await observer.call("queue-for", { client_id: id, items: [{ n: 1 }] });
    await eventually(() => client.enqueued === 1, "the live message");
    const back = new Promise((resolve) => client.on("ws:reconnect", resolve));
    await assert.rejects(client.call("close-me", { code: 1011, reason: "test" }), ConnectionLost);
    // Whether this lands while the client is offline or just after it is back, it arrives once.
    await observer.call("queue-for", { client_id: id, items: [{ n: 2 }] });
    await within(back, "the reconnect");
    await eventually(() => client.enqueued === 2, "the message queued meanwhile");
    assert.equal(client.clientId, id);
    // The client said it had n: 1 (queued=): the server dropped it from the box and kept n: 2.
    await eventually(async () => (await observer.call("box", id)).length === 1, "the box without n: 1");
    assert.deepEqual(await observer.call("box", id), [{ n: 2 }]);
    assert.deepEqual([client.consume(), client.consume(), client.consume()].map((q) => q?.data ?? null), [{ n: 1 }, { n: 2 }, null]);
  });

  /** A `setTimeout` for a client that holds every timer set while `hold` is on (a gate on the reconnect). */
  function gatedTimers() {
    class Held {
      constructor(fn, ms) { Object.assign(this, { fn, ms, cleared: false }); }
    }
    const held = [];
    const gate = {
      hold: false,
      setTimeout: (fn, ms) => {
        if (!gate.hold) return setTimeout(fn, ms);
        const h = new Held(fn, ms);
        held.push(h);
        return h;
      },
      clearTimeout: (h) => (h instanceof Held ? (h.cleared = true) : clearTimeout(h)),
      release() {
        gate.hold = false;
        for (const h of held.splice(0)) if (!h.cleared) setTimeout(h.fn, h.ms);
      },
    };
    return gate;
  }

  test("user and session channels: onUser / onSession get the server's publications, and across a reconnect what was published meanwhile, once, in order", async () => {
    const gate = gatedTimers();
    const client = new Client(`${server.url("/ws")}?as=lin`, { backoffInitial: 0.05, setTimeout: gate.setTimeout, clearTimeout: gate.clearTimeout });
    clients.push(client);
    const users = [], sessions = [];
    client.onUser((m) => users.push([m.channel, m.event, m.data, m.offset]));
    const stop = client.onSession((m) => sessions.push(m.data));
    await client.ready;
    assert.equal(client.welcome.channels.user.channel, "$user:lin");
    const other = await connect();
    await other.call("to-user", { user: "lin", data: "first" });
    await other.call("to-session", { session: "session-of-lin", data: "s1" });
    await eventually(() => users.length === 1 && sessions.length === 1, "the user and session publications");
    assert.deepEqual(users, [["$user:lin", "note", "first", 1]]);
    const resubscribed = new Promise((resolve) => client.on("ws:resubscribed", resolve));
    gate.hold = true;
    await assert.rejects(client.call("close-me", { code: 1011, reason: "test" }), ConnectionLost);
    await eventually(() => client.state === "reconnecting", "the client offline");
    await other.call("to-user", { user: "lin", data: "away 1" });
    await other.call("to-user", { user: "lin", data: "away 2" });
    gate.release();
    assert.deepEqual(await within(resubscribed, "the user channel's recovery"), { channel: "$user:lin", recovered: true });
    await other.call("to-user", { user: "lin", data: "after" });
    await eventually(() => users.length === 4, "the live publication after the reconnect");
    assert.deepEqual(users.map((u) => [u[2], u[3]]), [["first", 1], ["away 1", 2], ["away 2", 3], ["after", 4]]);
    stop();
    await other.call("to-session", { session: "session-of-lin", data: "s2" });
    await other.call("to-user", { user: "lin", data: "fence" });
    await eventually(() => users.length === 5, "the fence");
    assert.deepEqual(sessions, ["s1"]);
  });

  test("presence: label and meta in presence(), member events for connected, disconnected, reconnected and removed", async () => {
    const gate = gatedTimers();
    const watcher = await connect();
    const room = await watcher.subscribe("lobby:1", () => {}, { label: "watcher" });
    const seen = [];
    room.on("member", (m) => {
      if (m.label === "Mo") seen.push([m.state, m.meta, m.channel]);
    });
    const mo = await connect({ setTimeout: gate.setTimeout, clearTimeout: gate.clearTimeout, heartbeat: false });
    await mo.subscribe("lobby:1", () => {}, { label: "Mo", meta: { role: "guest" } });
    await eventually(() => seen.length === 1, "Mo connected");
    const { count, members } = await watcher.presence("lobby:1");
    assert.equal(count, 2);
    const mo_ = members.find((m) => m.client_id === mo.clientId);
    assert.deepEqual([mo_.label, mo_.meta, mo_.state], ["Mo", { role: "guest" }, "connected"]);
    gate.hold = true;
    await assert.rejects(mo.call("close-me", { code: 1011, reason: "test" }), ConnectionLost);
    await eventually(() => seen.length === 2, "Mo disconnected");
    gate.release();
    await eventually(() => seen.length === 3, "Mo reconnected");
    mo.close();
    await eventually(() => seen.length === 4, "Mo closed");
    await watcher.call("presence-later", 3600);
    await eventually(() => seen.length === 5, "Mo removed");
    const meta = { role: "guest" };
    assert.deepEqual(seen, ["connected", "disconnected", "reconnected", "disconnected", "removed"].map((state) => [state, meta, "lobby:1"]));
    assert.equal((await watcher.presence("lobby:1")).count, 1);
  });

  test("a frame over the server's max_message_size is refused locally, even if put in the outbox before the welcome", async () => {
    const client = await connect({ connect: false });
    const early = client.call("echo", "x".repeat(5000));
    client.connect();
    await assert.rejects(early, TooLarge);
    await assert.rejects(client.call("echo", "y".repeat(5000)), TooLarge);
    assert.equal(await client.call("echo", "small"), "small", "the socket stays open");
  });

  test("staged auth: auth() moves stage with ws:stage events, a refused stage rejects with AuthFailed", async () => {
    const client = await connect();
    const stages = [];
    client.on("ws:stage", (change) => stages.push(change));
    assert.equal(client.stage, "anonymous");
    assert.deepEqual(await client.auth("init"), { nonce: "n-1" });
    assert.equal(client.stage, "challenge");
    const refused = await client.auth("answer", { answer: "wrong", user: "ada" }).catch((e) => e);
    assert.ok(refused instanceof AuthFailed && refused instanceof Unauthorized);
    assert.deepEqual(
      [refused.name, refused.code, refused.stage, refused.remote, refused.message],
      ["AuthFailed", "unauthorized", "answer", true, "that is not the answer"],
    );
    assert.equal(client.stage, "challenge", "a refused stage leaves the stage as it was");
    assert.deepEqual(await client.auth("answer", { answer: "sesame", user: "ada" }), { hello: "ada" });
    assert.equal(client.stage, "authenticated");
    assert.deepEqual(stages, [
      { stage: "challenge", previous: "anonymous" },
      { stage: "authenticated", previous: "challenge" },
    ]);
    await assert.rejects(client.auth("init", { stage: "other" }), TypeError);
    await assert.rejects(client.auth("init", ["not", "an", "object"]), TypeError);
    await assert.rejects(client.auth(""), TypeError);
  });

  test("staged auth across a reconnect: the new socket's welcome brings the stage back to anonymous", async () => {
    const client = await connect();
    await client.auth("init");
    await client.auth("answer", { answer: "sesame", user: "ada" });
    const id = client.clientId;
    const stages = [];
    client.on("ws:stage", (change) => stages.push(change));
    const reconnected = new Promise((resolve) => client.on("ws:reconnect", resolve));
    client.call("close-me", { code: 1011, reason: "test" }).catch(() => {});
    await within(reconnected, "the reconnect");
    assert.deepEqual([client.clientId, client.welcome.resumed], [id, true]);
    assert.equal(client.stage, "anonymous");
    assert.deepEqual(stages, [{ stage: "anonymous", previous: "authenticated" }]);
    await client.auth("init");
    await client.auth("answer", { answer: "sesame", user: "ada" });
    assert.equal(client.stage, "authenticated");
  });

  test("extra top-level keys on tell and call reach the server's passthrough receiver; reserved keys throw", async () => {
    const client = await connect();
    const before = (await client.call("credentials")).length;
    client.tell("authorize", null, { extra: { credentialsObj: { user: "ada" } } });
    const answer = await client.call("authorize", { x: 1 }, { extra: { credentialsObj: { user: "bob" } } });
    assert.deepEqual(answer, { credentialsObj: { user: "bob" } });
    const seen = (await client.call("credentials")).slice(before);
    assert.deepEqual(seen, [{ user: "ada" }, { user: "bob" }]);
    for (const key of ["event", "id", "data", "channel", "call"]) {
      assert.throws(() => client.tell("authorize", null, { extra: { [key]: 1 } }), TypeError);
      await assert.rejects(client.call("authorize", null, { extra: { [key]: 1 } }), TypeError);
    }
    assert.equal(client.outboxLength, 0);
  });

  test("maxRetries and retryInterval against a stopped server: that many attempts, each after the interval, then closed", async () => {
    const port = await new Promise((resolve) => {
      const probe = net.createServer().listen(0, "127.0.0.1", () => {
        const { port: free } = /** @type {net.AddressInfo} */ (probe.address());
        probe.close(() => resolve(free));
      });
    });
    const waits = [];
    let sockets = 0;
    class Counted extends WebSocket {
      constructor(...args) {
        super(...args);
        sockets += 1;
      }
    }
    const client = new Client(`ws://127.0.0.1:${port}/ws`, {
      maxRetries: 3,
      retryInterval: 0.5,
      backoffInitial: 100,
      WebSocket: Counted,
      // The retry waits are recorded and cut short: the count matters, not the clock.
      setTimeout: (fn, ms) => {
        if (ms > 0) waits.push(ms);
        return setTimeout(fn, 0);
      },
    });
    clients.push(client);
    const closed = new Promise((resolve) => client.on("ws:close", resolve));
    await assert.rejects(client.ready, (e) => e instanceof ConnectionLost && e.message.includes("no connection after 3 retries"));
    assert.deepEqual(await within(closed, "ws:close"), { code: 1006, reason: "no connection after 3 retries" });
    assert.deepEqual(waits, [500, 500, 500]);
    assert.equal(sockets, 4, "the first attempt and three retries");
    assert.equal(client.state, "closed");
  });

  test("the example of docs/websockets.md's browser client section runs", async () => {
    const { main } = await docsExample("export async function main(");
    const log = console.log;
    console.log = () => {};
    try {
      const result = await main(server.url("/ws"));
      clients.push(result.client);
      assert.deepEqual(result.greeting, { greeting: "Hello from monument_ws!" });
      assert.equal(result.greeted, "Hello, Ada!");
      assert.deepEqual(result.chunks, [3, 2, 1]);
      assert.equal(result.code, "not_found");
      const me = result.members.find((m) => m.client_id === result.client.clientId);
      assert.deepEqual([me.label, me.meta], ["Ada", { lang: "en" }]);
      await eventually(() => result.messages.some((m) => m.text === "hi"), "the example's own message");
    } finally {
      console.log = log;
    }
  });
});

describe("the docs' JS examples against the servers of the python examples they name", needs(globalThis.WebSocket ? null : "this Node has no WebSocket (run with --experimental-websocket)"), () => {
  const servers = [];
  const clients = [];

  after(async () => {
    for (const client of clients) client.close();
    for (const server of servers) await server.stop();
  });

  async function serve(factory) {
    const server = await startServer({ app: `tests.js.docs_app:${factory}` });
    servers.push(server);
    return server;
  }

  test("frame middleware: the page stamps what it sends and screens what it gets", async () => {
    const server = await serve("middleware_app");
    const { stampAndScreen } = await docsExample("export async function stampAndScreen(");
    const result = await within(stampAndScreen(server.url("/ws")), "the example");
    clients.push(result.client);
    assert.deepEqual(result.pong, {});
    assert.equal(result.refused, "forbidden");
    assert.deepEqual(result.stamps, [1, 2, 3]);
    assert.equal(result.client.refused, 0);
    const audit = await (await fetch(server.url("/audit"))).json();
    assert.deepEqual(audit.map((m) => [m.event, m.sender]), [["ws:ping", "page-1"], ["admin:wipe", "page-1"]]);
  });

  test("peer queue: the page consumes what the server queued and the server what the page queued", async () => {
    const server = await serve("queue_app");
    const { queueRoundTrip } = await docsExample("export async function queueRoundTrip(");
    const result = await within(queueRoundTrip(server.url("/ws")), "the example");
    clients.push(result.client);
    assert.deepEqual([result.text, result.total, result.order], ["hello", 12, 1]);
    assert.ok(Number.isInteger(result.seq) && result.seq > 0);
    assert.equal(result.client.enqueued, 0);
  });
});
