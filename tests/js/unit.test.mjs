// Unit tests of monument.js's pure parts (backoff, close-code policy, JSON Patch, frame
// classification against the shared vectors) and of its frame handling over a fake socket.
// Run with: node --test tests/js/
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  AuthFailed,
  BadFrame,
  Client,
  ConnectionLost,
  Forbidden,
  InternalError,
  NotFound,
  PatchError,
  QueueFull,
  RESERVED_KEYS,
  Timeout,
  TooLarge,
  Unauthorized,
  applyPatch,
  backoffDelay,
  classify,
  decodeFrame,
  frameOf,
  fromErrorFrame,
  reconnectPolicy,
  socketUrl,
} from "../../monument_ws/static/monument.js";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const PYTHON = process.env.MONUMENT_WS_PYTHON || path.join(ROOT, ".venv", "bin", "python");

/** Run Python code of the project (its venv) and parse what it prints as JSON. */
function python(code) {
  const result = spawnSync(PYTHON, ["-c", code], { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 });
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout);
}

describe("backoff and close codes", () => {
  test("backoff is full jitter under a doubling ceiling capped at backoffMax", () => {
    const ceilings = [0, 1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffDelay(n, { initial: 0.25, max: 30, random: () => 1 }));
    assert.deepEqual(ceilings, [0.25, 0.5, 1, 2, 4, 8, 16, 30, 30]);
    assert.equal(backoffDelay(5, { initial: 0.25, max: 30, random: () => 0 }), 0);
    assert.equal(backoffDelay(3, { initial: 0.25, max: 30, random: () => 0.5 }), 1);
    assert.equal(backoffDelay(10_000, { initial: 0.25, max: 30, random: () => 1 }), 30, "no overflow for huge attempts");
  });

  test("a 4029 close waits longDelay on top of the backoff", () => {
    const delay = backoffDelay(0, { initial: 0.25, max: 30, longDelay: 15, policy: "long_delay", random: () => 0 });
    assert.equal(delay, 15);
  });

  test("the close-code policy is the Python protocol module's table", () => {
    const table = python(
      "import json\nfrom monument_ws.protocol import CloseCode\n" +
        "print(json.dumps({int(c): c.reconnect.name.lower() for c in CloseCode}))",
    );
    assert.ok(Object.keys(table).length >= 11);
    for (const [code, policy] of Object.entries(table)) assert.equal(reconnectPolicy(Number(code)), policy, `code ${code}`);
    assert.equal(reconnectPolicy(1012), "backoff", "codes outside the table reconnect with backoff");
    assert.equal(reconnectPolicy(null), "backoff");
  });
});

describe("JSON Patch (RFC 6902)", () => {
  test("the RFC's operations: add, remove, replace, move, copy, test", () => {
    const doc = { foo: ["bar", "baz"], a: { b: 1 }, "x/y": 1, "m~n": 2 };
    const result = applyPatch(doc, [
      { op: "add", path: "/foo/1", value: "qux" },
      { op: "add", path: "/foo/-", value: "end" },
      { op: "remove", path: "/a/b" },
      { op: "replace", path: "/x~1y", value: 3 },
      { op: "move", from: "/m~0n", path: "/a/moved" },
      { op: "copy", from: "/foo", path: "/copy" },
      { op: "test", path: "/copy/1", value: "qux" },
    ]);
    assert.deepEqual(result, {
      foo: ["bar", "qux", "baz", "end"],
      a: { moved: 2 },
      "x/y": 3,
      copy: ["bar", "qux", "baz", "end"],
    });
    assert.deepEqual(doc, { foo: ["bar", "baz"], a: { b: 1 }, "x/y": 1, "m~n": 2 }, "the input is not modified");
    assert.deepEqual(applyPatch({ a: 1 }, [{ op: "replace", path: "", value: [1] }]), [1], "the whole document");
  });

  test("a failing patch throws PatchError and leaves the input untouched", () => {
    const doc = { a: [1, 2], b: { c: 1 } };
    const bad = [
      [{ op: "remove", path: "/a/0" }, { op: "test", path: "/b/c", value: 2 }],
      [{ op: "replace", path: "/nope", value: 1 }],
      [{ op: "remove", path: "/a/5" }],
      [{ op: "add", path: "/a/01", value: 1 }],
      [{ op: "add", path: "/missing/x", value: 1 }],
      [{ op: "move", from: "/b", path: "/b/c/d" }],
      [{ op: "frobnicate", path: "/a" }],
      [{ op: "add", path: "/a" }],
      [{ op: "add", path: "no-slash", value: 1 }],
    ];
    for (const ops of bad) assert.throws(() => applyPatch(doc, ops), PatchError, JSON.stringify(ops));
    assert.deepEqual(doc, { a: [1, 2], b: { c: 1 } });
  });

  test("applies every patch Python's jsonpatch makes (300 random pairs)", () => {
    const cases = python(`
import json, random, jsonpatch
rng = random.Random(20241123)
def value(depth=0):
    r = rng.random()
    if depth < 3 and r < 0.3:
        return {rng.choice(["a", "b", "c", "d/e", "f~g", ""]): value(depth + 1) for _ in range(rng.randint(0, 4))}
    if depth < 3 and r < 0.55:
        return [value(depth + 1) for _ in range(rng.randint(0, 5))]
    return rng.choice([0, 1, 2, "x", "y", None, True, [], {}])
def mutate(v):
    v = json.loads(json.dumps(v))
    if isinstance(v, dict) and v and rng.random() < 0.7:
        k = rng.choice(list(v))
        if rng.random() < 0.3: del v[k]
        else: v[k] = mutate(v[k])
        if rng.random() < 0.3: v[rng.choice(["n", "a", "z"])] = value(2)
        return v
    if isinstance(v, list) and v and rng.random() < 0.7:
        i = rng.randrange(len(v))
        choice = rng.random()
        if choice < 0.3: v.pop(i)
        elif choice < 0.6: v.insert(i, value(2))
        else: v[i] = mutate(v[i])
        return v
    return value(1)
cases = []
for _ in range(300):
    src = {"root": value()}
    dst = {"root": mutate(src["root"])} if rng.random() < 0.9 else {"other": value()}
    cases.append({"src": src, "dst": dst, "patch": jsonpatch.make_patch(src, dst).patch})
print(json.dumps(cases))
`);
    const ops = new Set(cases.flatMap((c) => c.patch.map((op) => op.op)));
    for (const op of ["add", "remove", "replace", "move"]) assert.ok(ops.has(op), `the sample exercises ${op}`);
    for (const { src, dst, patch } of cases) assert.deepEqual(applyPatch(src, patch), dst, JSON.stringify(patch));
  });
});

const VECTORS = path.join(ROOT, "tests", "vectors", "frames.json");

describe("the shared protocol vectors (tests/vectors/frames.json)", { skip: !existsSync(VECTORS) && "tests/vectors/frames.json is not there yet" }, () => {
  const vectors = existsSync(VECTORS) ? JSON.parse(readFileSync(VECTORS, "utf8")) : { server_frames: [] };

  test("the vectors are protocol version 1 and hold server frames", () => {
    assert.equal(vectors.protocol, 1);
    assert.ok(vectors.server_frames.length >= 20);
  });

  for (const vector of vectors.server_frames) {
    test(`server frame: ${vector.name}`, () => {
      const frame = decodeFrame(vector.text);
      const kind = frame === null ? "invalid" : classify(frame);
      if (vector.expect.ignore) {
        assert.equal(kind, "invalid");
        return;
      }
      const { kind: expected, ...fields } = vector.expect;
      assert.equal(kind, expected);
      for (const [key, value] of Object.entries(fields)) {
        if (key === "code" || key === "message") {
          assert.equal(fromErrorFrame(frame.error)[key], value, key);
        } else {
          assert.deepEqual(frame[key] ?? null, value, key);
        }
      }
    });
  }
});

describe("typed errors", () => {
  test("AuthFailed is an Unauthorized with its own name and the stage tried", () => {
    const error = new AuthFailed("no", { stage: "answer", remote: true });
    assert.ok(error instanceof Unauthorized);
    assert.deepEqual([error.name, error.code, error.stage, error.remote], ["AuthFailed", "unauthorized", "answer", true]);
  });

  test("extra keys: RESERVED_KEYS is the Python protocol module's set, and frameOf refuses them", () => {
    const reserved = python("import json\nfrom monument_ws.protocol import RESERVED_KEYS\nprint(json.dumps(sorted(RESERVED_KEYS)))");
    assert.deepEqual([...RESERVED_KEYS].sort(), reserved);
    assert.deepEqual(frameOf("e", 1, { credentialsObj: { a: 1 } }, 7), { event: "e", id: 7, data: 1, credentialsObj: { a: 1 } });
    assert.deepEqual(frameOf("e", undefined), { event: "e", data: null });
    for (const key of reserved) assert.throws(() => frameOf("e", 1, { [key]: 1 }), TypeError);
    assert.throws(() => frameOf("e", 1, /** @type {any} */ (["x"])), TypeError);
  });

  test("error frames become the typed error, keeping the server's code", () => {
    const error = fromErrorFrame({ code: "forbidden", message: "no" });
    assert.ok(error instanceof Forbidden);
    assert.deepEqual([error.code, error.message, error.remote], ["forbidden", "no", true]);
    const badJson = fromErrorFrame({ code: "bad_json", message: "?" });
    assert.ok(badJson instanceof BadFrame);
    assert.equal(badJson.code, "bad_json");
    assert.ok(fromErrorFrame({ code: "from_the_future" }) instanceof InternalError);
    assert.ok(fromErrorFrame(null) instanceof InternalError);
    assert.ok(new QueueFull() instanceof Error);
    assert.equal(new QueueFull().code, "rate_limited");
    assert.equal(new ConnectionLost().code, "unavailable");
  });
});

// --- frame handling over a fake socket -------------------------------------------------

class FakeSocket {
  static all = [];
  constructor(url, protocol) {
    this.url = url;
    this.protocol = protocol;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000, reason = "") {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
  /** The server accepts and welcomes. */
  welcome(data = {}) {
    this.readyState = 1;
    this.receive({ event: "ws:welcome", data: { client_id: "c1", resume: "secret-1", protocol: 1, heartbeat: 0, ...data } });
  }
  receive(frame) {
    this.onmessage({ data: typeof frame === "string" ? frame : JSON.stringify(frame) });
  }
  drop(code = 1006, reason = "") {
    this.readyState = 3;
    this.onclose({ code, reason });
  }
}

/** Timers the test fires by hand, so nothing depends on elapsed time. */
class FakeClock {
  constructor() {
    this.timers = new Map();
    this.next = 1;
  }
  setTimeout = (fn, ms) => {
    const id = this.next++;
    this.timers.set(id, { fn, ms });
    return id;
  };
  clearTimeout = (id) => this.timers.delete(id);
  /** Fire the pending timers registered so far (only those of `ms`, if given), in order. */
  fire(ms) {
    const due = [...this.timers.entries()].filter(([, t]) => ms === undefined || t.ms === ms);
    for (const [id] of due) this.timers.delete(id);
    for (const [, { fn }] of due) fn();
    return due.map(([, { ms }]) => ms);
  }
}

function fakeClient(options = {}) {
  FakeSocket.all = [];
  const clock = new FakeClock();
  const client = new Client("ws://example.test/ws", {
    WebSocket: FakeSocket,
    setTimeout: clock.setTimeout,
    clearTimeout: clock.clearTimeout,
    random: () => 0.5,
    ...options,
  });
  return { client, clock, socket: () => FakeSocket.all.at(-1) };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe("frame handling (fake socket)", () => {
  test("calls wait in the outbox until the welcome, then settle by id with data or typed error", async () => {
    const { client, socket } = fakeClient();
    const a = client.call("echo", 1);
    const b = client.call("missing");
    assert.equal(client.outboxLength, 2);
    assert.deepEqual(socket().sent, []);
    socket().welcome();
    assert.deepEqual(socket().sent.map((f) => [f.event, f.id]), [["echo", 1], ["missing", 2]]);
    assert.equal(socket().protocol, "monument.v1");
    socket().receive({ event: "ws:error", id: 2, error: { code: "not_found", message: "none" } });
    socket().receive({ event: "echo", id: 1, data: 1 });
    assert.equal(await a, 1);
    await assert.rejects(b, (e) => e instanceof NotFound && e.remote && e.message === "none");
  });

  test("a stream yields chunks until its end; a plain reply is the only item", async () => {
    const { client, socket } = fakeClient();
    socket().welcome();
    const seen = [];
    const done = (async () => {
      for await (const n of client.stream("countdown", 2)) seen.push(n);
    })();
    await tick();
    const id = socket().sent[0].id;
    socket().receive({ event: "countdown", id, data: 2, more: true });
    socket().receive({ event: "countdown", id, data: 1, more: true });
    socket().receive({ event: "countdown", id, end: true });
    await done;
    assert.deepEqual(seen, [2, 1]);
    const single = [];
    const plain = (async () => {
      for await (const x of client.stream("echo", "x")) single.push(x);
    })();
    await tick();
    socket().receive({ event: "echo", id: socket().sent[1].id, data: "x" });
    await plain;
    assert.deepEqual(single, ["x"]);
  });

  test("leaving a stream early sends ws:cancel with its id", async () => {
    const { client, socket } = fakeClient();
    socket().welcome();
    const done = (async () => {
      for await (const n of client.stream("forever")) if (n === 1) break;
    })();
    await tick();
    const id = socket().sent[0].id;
    socket().receive({ event: "forever", id, data: 1, more: true });
    await done;
    assert.deepEqual(socket().sent.at(-1), { event: "ws:cancel", data: { id } });
  });

  test("a call times out with Timeout and the server is told to cancel", async () => {
    const { client, clock, socket } = fakeClient();
    socket().welcome();
    const call = client.call("slow", null, { timeout: 2 });
    assert.deepEqual(clock.fire(), [2000]);
    await assert.rejects(call, Timeout);
    assert.deepEqual(socket().sent.at(-1), { event: "ws:cancel", data: { id: 1 } });
    socket().receive({ event: "slow", id: 1, data: "late" }); // a late answer is dropped
  });

  test("server calls are performed and answered with ws:result / ws:error keyed by call", async () => {
    const { client, socket } = fakeClient();
    socket().welcome();
    client.perform("ask-name", (data) => `Ada (${data.why})`);
    client.perform("refuse", () => {
      throw new Forbidden("not you");
    });
    client.perform("crash", () => {
      throw new Error("secret detail");
    });
    const original = console.error;
    console.error = () => {};
    try {
      socket().receive({ event: "ask-name", call: 12, data: { why: "greeting" } });
      socket().receive({ event: "refuse", call: 13 });
      socket().receive({ event: "crash", call: 14 });
      socket().receive({ event: "nobody", call: 15 });
      await tick();
    } finally {
      console.error = original;
    }
    assert.deepEqual(socket().sent.sort((a, b) => a.call - b.call), [
      { event: "ws:result", call: 12, data: "Ada (greeting)" },
      { event: "ws:error", call: 13, error: { code: "forbidden", message: "not you" } },
      { event: "ws:error", call: 14, error: { code: "internal", message: "internal error" } },
      { event: "ws:error", call: 15, error: { code: "not_found", message: 'this client performs no "nobody"' } },
    ]);
  });

  test("pushes reach on() listeners; SYNC pushes deliver the patched object", () => {
    const { client, socket } = fakeClient();
    socket().welcome();
    const news = [], boards = [];
    const off = client.on("news", (data) => news.push(data));
    client.on("board", (data) => boards.push(data));
    socket().receive({ event: "news", data: 1 });
    off();
    socket().receive({ event: "news", data: 2 });
    socket().receive({ event: "board", sync: "full", data: { a: 1, list: [1] } });
    socket().receive({ event: "board", sync: "patch", data: [{ op: "replace", path: "/a", value: 2 }, { op: "add", path: "/list/-", value: 2 }] });
    assert.deepEqual(news, [1]);
    assert.deepEqual(boards, [{ a: 1, list: [1] }, { a: 2, list: [1, 2] }]);
    assert.deepEqual(client.synced("board"), { a: 2, list: [1, 2] });
  });

  test("a SYNC patch that does not apply is an error event, and the object stays as it was", () => {
    const { client, socket } = fakeClient();
    socket().welcome();
    const errors = [];
    client.on("ws:error", (e) => errors.push(e.code));
    socket().receive({ event: "board", sync: "full", data: { a: 1 } });
    socket().receive({ event: "board", sync: "patch", data: [{ op: "test", path: "/a", value: 9 }] });
    assert.deepEqual(errors, ["bad_frame"]);
    assert.deepEqual(client.synced("board"), { a: 1 });
  });

  test("publications reach their subscription once, in offset order; ws:knock is answered", async () => {
    const { client, socket } = fakeClient();
    socket().welcome();
    const got = [];
    const subscribing = client.subscribe("room", (m) => got.push([m.event, m.data, m.offset]), { label: "Ada", meta: { a: 1 } });
    assert.deepEqual(socket().sent[0], { event: "ws:subscribe", id: 1, data: { channel: "room", label: "Ada", meta: { a: 1 } } });
    socket().receive({ event: "ws:subscribe", id: 1, data: { channel: "room", offset: 4, epoch: "e1", recovered: false } });
    const room = await subscribing;
    assert.deepEqual([room.offset, room.epoch, room.recovered], [4, "e1", false]);
    socket().receive({ event: "say", channel: "room", data: "a", offset: 5 });
    socket().receive({ event: "say", channel: "room", data: "a", offset: 5 });
    socket().receive({ event: "say", channel: "room", data: "b", offset: 6 });
    socket().receive({ event: "say", channel: "other", data: "c", offset: 7 });
    assert.deepEqual(got, [["say", "a", 5], ["say", "b", 6]]);
    const joins = [];
    room.on("join", (d) => joins.push(d.client_id));
    socket().receive({ event: "ws:join", channel: "room", data: { client_id: "c2" } });
    assert.deepEqual(joins, ["c2"]);
    socket().receive({ event: "ws:knock", channel: "room", data: { channel: "room" } });
    assert.deepEqual(socket().sent.at(-1), { event: "ws:heartbeat", data: { channels: ["room"] } });
  });

  test("a ws:resubscribe naming a new epoch and offset is taken without a new subscribe; what follows is delivered once, in order", async () => {
    const { client, socket } = fakeClient();
    socket().welcome();
    const got = [];
    const resubscribed = [];
    client.on("ws:resubscribed", (d) => resubscribed.push(d));
    const subscribing = client.subscribe("room", (m) => got.push([m.data, m.offset]));
    socket().receive({ event: "ws:subscribe", id: 1, data: { channel: "room", offset: 7, epoch: "e1", recovered: true } });
    const room = await subscribing;
    socket().receive({ event: "say", channel: "room", data: "a", offset: 8 });
    const sent = socket().sent.length;
    socket().receive({ event: "ws:resubscribe", data: { channel: "room", epoch: "e2", offset: 0 } });
    assert.equal(socket().sent.length, sent, "no subscribe is sent");
    assert.deepEqual([room.offset, room.epoch, room.recovered], [0, "e2", false]);
    assert.deepEqual(resubscribed, [{ channel: "room", recovered: false }]);
    socket().receive({ event: "say", channel: "room", data: "b", offset: 1 });
    socket().receive({ event: "say", channel: "room", data: "b", offset: 1 });
    socket().receive({ event: "say", channel: "room", data: "c", offset: 2 });
    assert.deepEqual(got, [["a", 8], ["b", 1], ["c", 2]]);
  });

  test("user channel: onUser gets its publications once, in order; a ws:resubscribe about it rejoins it from scratch; member pushes reach the subscription", async () => {
    const { client, socket } = fakeClient();
    const got = [];
    const off = client.onUser((m) => got.push([m.channel, m.data, m.offset]));
    socket().welcome({ channels: { user: { channel: "$user:ada", offset: 3, epoch: "e1", recovered: false } } });
    socket().receive({ event: "note", channel: "$user:ada", data: "old", offset: 3 });
    socket().receive({ event: "note", channel: "$user:ada", data: "new", offset: 4 });
    socket().receive({ event: "note", channel: "$session:abc", data: "not a user's", offset: 1 });
    assert.deepEqual(got, [["$user:ada", "new", 4]]);
    socket().receive({ event: "ws:resubscribe", data: { channel: "$user:ada" } });
    assert.deepEqual(socket().sent.at(-1), { event: "ws:subscribe", id: 1, data: { channel: "$user:ada" } });
    off();
    socket().receive({ event: "note", channel: "$user:ada", data: "unheard", offset: 5 });
    assert.equal(got.length, 1);
    const sessionNotes = [];
    const onSessionNote = (m) => sessionNotes.push(m.data);
    client.onSession(onSessionNote);
    socket().receive({ event: "note", channel: "$session:abc", data: "heard", offset: 2 });
    client.offSession(onSessionNote); // the Python client's off_session; onUser's twin is offUser
    socket().receive({ event: "note", channel: "$session:abc", data: "unheard", offset: 3 });
    assert.deepEqual(sessionNotes, ["heard"]);
    const subscribing = client.subscribe("room", () => {});
    socket().receive({ event: "ws:subscribe", id: 2, data: { channel: "room", offset: 0, epoch: "e1", recovered: false } });
    const room = await subscribing;
    const members = [];
    room.on("member", (m) => members.push([m.client_id, m.state]));
    socket().receive({ event: "ws:member", channel: "room", data: { client_id: "c2", state: "reconnected", channel: "room" } });
    assert.deepEqual(members, [["c2", "reconnected"]]);
  });

  test("several URLs: each drop or failed attempt moves to the next, round and round, resume secret along", () => {
    FakeSocket.all = [];
    const clock = new FakeClock();
    const urls = ["ws://a.test/ws", "ws://b.test/ws"];
    const client = new Client(urls, { WebSocket: FakeSocket, setTimeout: clock.setTimeout, clearTimeout: clock.clearTimeout, random: () => 0.5 });
    const offline = [];
    client.on("ws:offline", ({ code }) => offline.push([code, client.url]));
    assert.deepEqual([client.urls, client.url, FakeSocket.all[0].url], [urls, urls[0], "ws://a.test/ws"]);
    FakeSocket.all[0].welcome();
    FakeSocket.all[0].drop(1001);
    assert.equal(client.url, urls[1]);
    clock.fire();
    assert.equal(FakeSocket.all[1].url, "ws://b.test/ws?resume=secret-1");
    FakeSocket.all[1].drop(1006); // the attempt failed
    clock.fire();
    assert.equal(FakeSocket.all[2].url, "ws://a.test/ws?resume=secret-1");
    FakeSocket.all[2].welcome();
    assert.deepEqual(offline, [[1001, urls[0]], [1006, urls[1]]]);
    assert.equal(client.state, "open");
    assert.throws(() => new Client([], { connect: false }), TypeError);
    client.close();
  });

  test("an error no close follows (Node 20's WebSocket, server down) is a drop; with a close, the close counts", () => {
    const { client, clock, socket } = fakeClient();
    const offline = [];
    client.on("ws:offline", ({ code, reason }) => offline.push([code, reason]));
    const first = socket();
    first.onerror({});
    assert.deepEqual(offline, [], "not before the task that would carry the close is over");
    assert.deepEqual(clock.fire(0), [0]);
    assert.deepEqual(offline, [[1006, "the connection failed"]]);
    clock.fire();
    const second = socket();
    assert.notEqual(second, first);
    second.onerror({});
    second.drop(1006, "refused"); // a browser: close in the same task
    clock.fire(0);
    assert.deepEqual(offline, [[1006, "the connection failed"], [1006, "refused"]]);
    client.close();
  });

  test("after a drop: backoff, resume secret, resubscribe with since, calls lost or retried", async () => {
    const { client, clock, socket } = fakeClient();
    const offline = [], states = [];
    client.on("ws:offline", (d) => offline.push([d.code, d.delay]));
    client.on("ws:state", ({ state }) => states.push(state));
    socket().welcome();
    const subscribing = client.subscribe("room", () => {});
    socket().receive({ event: "ws:subscribe", id: 1, data: { channel: "room", offset: 7, epoch: "e1", recovered: false } });
    await subscribing;
    const lost = client.call("echo", 1);
    const retried = client.call("echo", 2, { retry: true });
    socket().drop(1006);
    await assert.rejects(lost, ConnectionLost);
    assert.deepEqual(offline, [[1006, 0.125]]);
    client.tell("queued", 3);
    assert.deepEqual(clock.fire(125), [125]);
    const second = socket();
    assert.match(second.url, /[?&]resume=secret-1$/);
    second.welcome({ resume: "secret-2" });
    assert.deepEqual(second.sent.map((f) => [f.event, f.data]), [
      ["ws:subscribe", { channel: "room", since: { offset: 7, epoch: "e1" } }],
      ["echo", 2],
      ["queued", 3],
    ]);
    second.receive({ event: "echo", id: second.sent[1].id, data: 2 });
    assert.equal(await retried, 2);
    assert.equal(client.resume, "secret-2");
    assert.deepEqual(states, ["open", "reconnecting", "open"]);
  });

  test("4401 and other no-reconnect codes close for good with ws:close", async () => {
    for (const code of [1000, 1008, 4401, 4403, 4409]) {
      const { client, clock, socket } = fakeClient();
      const closes = [];
      client.on("ws:close", (d) => closes.push(d));
      const pending = client.call("x");
      socket().drop(code, "go away");
      await assert.rejects(pending, ConnectionLost);
      assert.deepEqual(closes, [{ code, reason: "go away" }]);
      assert.equal(client.state, "closed");
      assert.equal(clock.timers.size, 0, "no reconnect is scheduled");
      assert.throws(() => client.tell("x"), ConnectionLost);
    }
  });

  test("4029 waits longDelay more; 1009 drops the offending call with TooLarge", async () => {
    const { client, clock, socket } = fakeClient({ longDelay: 15 });
    socket().welcome();
    socket().drop(4029);
    assert.deepEqual(clock.fire(), [15125]);
    socket().welcome();
    const big = client.call("big", "x", { retry: true });
    socket().drop(1009);
    await assert.rejects(big, TooLarge);
  });

  test("the outbox is bounded (QueueFull) and frames over the server's limit are TooLarge", async () => {
    const { client, socket } = fakeClient({ outboxLimit: 2 });
    client.tell("a");
    client.tell("b");
    assert.throws(() => client.tell("c"), QueueFull);
    await assert.rejects(client.call("d"), QueueFull);
    socket().welcome({ max_message_size: 64 });
    assert.equal(client.outboxLength, 0);
    assert.throws(() => client.tell("e", "x".repeat(100)), TooLarge);
  });

  test("heartbeats carry an id; one unanswered for a period closes the dead socket and reconnects", async () => {
    const { client, clock, socket } = fakeClient();
    socket().welcome({ heartbeat: 5 });
    assert.deepEqual(clock.fire(), [5000]);
    const beat = socket().sent.at(-1);
    assert.equal(beat.event, "ws:heartbeat");
    socket().receive({ event: "ws:heartbeat", id: beat.id, data: {} });
    await tick();
    clock.fire(); // the next beat
    const first = socket();
    assert.equal(first.sent.filter((f) => f.event === "ws:heartbeat").length, 2);
    clock.fire(); // its deadline passes unanswered
    assert.equal(client.state, "reconnecting");
    assert.equal(client.closeCode, 1006);
    clock.fire();
    assert.notEqual(socket(), first, "a new socket was opened");
  });

  test("outgoing hooks stamp every frame before it enters the outbox; a refusal throws at the sender, nothing enters it", async () => {
    const { client, clock, socket } = fakeClient();
    const seen = [];
    client.outgoing((frame) => {
      seen.push(frame.event);
      if (frame.data === "forbidden-word") throw new Forbidden("the client refuses to send that");
      frame.sender = "js";
    });
    const remove = client.outgoing((frame) => ({ ...frame, dt: seen.length }));
    client.tell("early", 1); // in the outbox before the welcome: hooked when added, not again when sent
    assert.throws(() => client.tell("echo", "forbidden-word"), (e) => e instanceof Forbidden && !e.remote);
    await assert.rejects(client.call("echo", "forbidden-word"), Forbidden);
    assert.equal(client.outboxLength, 1);
    socket().welcome();
    const retried = client.call("echo", 2, { retry: true });
    remove();
    client.tell("late", 3);
    assert.deepEqual(socket().sent, [
      { event: "early", data: 1, sender: "js", dt: 1 },
      { event: "echo", id: 2, data: 2, sender: "js", dt: 4 },
      { event: "late", data: 3, sender: "js" },
    ]);
    socket().drop(1006);
    assert.deepEqual(clock.fire(125), [125]);
    socket().welcome();
    assert.deepEqual(socket().sent, [{ event: "echo", id: 2, data: 2, sender: "js", dt: 4 }], "a retry goes as the hooks left it");
    socket().receive({ event: "echo", id: 2, data: 2 });
    assert.equal(await retried, 2);
    assert.deepEqual(seen, ["early", "echo", "echo", "echo", "late"]);
  });

  test("incoming hooks rewrite frames; a refusal answers a server call, fails a reply, drops a push", async () => {
    const { client, socket } = fakeClient();
    const screened = [];
    client.incoming((frame) => {
      screened.push(frame.event);
      if (frame.data === "secret") throw new Forbidden("screened");
      if (frame.event === "news") return { ...frame, data: { wrapped: frame.data } };
      return undefined;
    });
    client.incoming((frame) => {
      if (frame.data === "bug") throw new Error("a bug in the hook");
    });
    socket().welcome();
    assert.deepEqual(screened, [], "the welcome is not hooked");
    const news = [];
    client.on("news", (data) => news.push(data));
    client.perform("confirm", () => "yes");
    socket().receive({ event: "news", data: 1 });
    socket().receive({ event: "news", data: "secret" });
    const refused = client.call("echo", "x");
    socket().receive({ event: "echo", id: 1, data: "secret" });
    await assert.rejects(refused, (e) => e instanceof Forbidden && e.message === "screened" && !e.remote);
    socket().receive({ event: "confirm", call: 7, data: "secret" });
    const original = console.error;
    console.error = () => {};
    try {
      socket().receive({ event: "confirm", call: 8, data: "bug" });
    } finally {
      console.error = original;
    }
    socket().receive({ event: "ws:error", call: 9, error: { code: "bad_frame" }, data: "secret" });
    assert.deepEqual(news, [{ wrapped: 1 }]);
    assert.equal(client.refused, 5);
    assert.deepEqual(socket().sent.slice(1), [
      { event: "ws:error", call: 7, error: { code: "forbidden", message: "screened" } },
      { event: "ws:error", call: 8, error: { code: "internal", message: "internal error" } },
    ]);
  });

  test("listen() gets every frame first: the welcome, frames hooks refuse, text that is not JSON", () => {
    const { client, socket } = fakeClient();
    const heard = [];
    client.listen((frame) => heard.push(frame));
    client.incoming(() => {
      throw new Forbidden("nothing gets through");
    });
    const original = console.warn;
    console.warn = () => {};
    try {
      socket().welcome();
      socket().receive({ event: "news", data: 1 });
      socket().receive("not json");
      socket().receive("[1, 2]");
    } finally {
      console.warn = original;
    }
    assert.deepEqual(heard.map((f) => f.event ?? f), ["ws:welcome", "news", "not json", [1, 2]]);
    assert.equal(client.refused, 1);
  });

  test("peer queue: ws:enqueue pushes wait for consume(filter), once each, bounded by size and ttl", async () => {
    let now = 1000;
    const { client, socket } = fakeClient({ peerQueueSize: 3, peerQueueTtl: 30, clock: () => now });
    socket().welcome();
    const pushed = [];
    client.on("ws:enqueue", (data) => pushed.push(data));
    assert.equal(client.consume(), null);
    socket().receive({ event: "ws:enqueue", seq: 1, data: { kind: "invoice", n: 1 } });
    socket().receive({ event: "ws:enqueue", seq: 2, data: { kind: "note", n: 2 } });
    socket().receive({ event: "ws:enqueue", seq: 2, data: { kind: "note", n: 2 } }); // sent again: dropped
    socket().receive({ event: "ws:enqueue", seq: 3, data: { kind: "invoice", n: 3 } });
    assert.equal(client.enqueued, 3);
    assert.deepEqual(client.consume((d) => d.kind === "note"), { data: { kind: "note", n: 2 }, seq: 2 });
    assert.deepEqual(client.consume(), { data: { kind: "invoice", n: 1 }, seq: 1 });
    assert.equal(client.consume((d) => d.kind === "note"), null);
    for (const seq of [4, 5, 6]) socket().receive({ event: "ws:enqueue", seq, data: seq });
    assert.deepEqual([client.enqueued, client.peerQueueDropped], [3, 1], "the oldest is dropped past peerQueueSize");
    now += 31;
    assert.deepEqual([client.enqueued, client.peerQueueDropped], [0, 4], "and each waits peerQueueTtl at most");
    assert.deepEqual(pushed, [], "queued messages are not pushes");
    const stored = client.enqueue({ kind: "order" });
    assert.deepEqual(socket().sent.at(-1), { event: "ws:enqueue", id: 1, data: { kind: "order" } });
    socket().receive({ event: "ws:enqueue", id: 1, data: { seq: 41 } });
    assert.equal(await stored, 41);
  });

  test("after a reconnect the client says which queued messages it has (queued= beside resume=)", () => {
    const { client, clock, socket } = fakeClient();
    socket().welcome();
    socket().drop(1006);
    clock.fire();
    assert.doesNotMatch(socket().url, /queued=/, "nothing received: nothing to say");
    socket().welcome();
    socket().receive({ event: "ws:enqueue", seq: 7, data: "a" });
    socket().drop(1006);
    clock.fire();
    assert.match(socket().url, /[?&]resume=secret-1&queued=7$/);
    socket().welcome();
    socket().receive({ event: "ws:enqueue", seq: 7, data: "a" });
    socket().receive({ event: "ws:enqueue", seq: 8, data: "b" });
    assert.deepEqual([client.consume()?.data, client.consume()?.data, client.consume()], ["a", "b", null]);
  });

  test("the old names still work: options and properties, each with one console.warn per page", () => {
    const warnings = [];
    const original = console.warn;
    console.warn = (...args) => warnings.push(args.join(" "));
    let client, again;
    try {
      ({ client } = fakeClient({ queueLimit: 2, queueSize: 3, queueTtl: 30 }));
      assert.deepEqual([client.outboxLimit, client.peerQueueSize, client.peerQueueTtl], [2, 3, 30]);
      client.tell("a");
      assert.deepEqual(
        [client.queueLimit, client.queueSize, client.queueTtl, client.queueDropped, client.queued],
        [2, 3, 30, 0, 1],
      );
      client.queueLimit = 5;
      client.queueSize = 6;
      client.queueTtl = 7;
      client.queueDropped = 8;
      assert.deepEqual([client.outboxLimit, client.peerQueueSize, client.peerQueueTtl, client.peerQueueDropped], [5, 6, 7, 8]);
      ({ client: again } = fakeClient({ queueLimit: 9 }));
      assert.deepEqual([again.queued, again.queueLimit], [0, 9]);
    } finally {
      console.warn = original;
    }
    const renamed = { queueLimit: "outboxLimit", queueSize: "peerQueueSize", queueTtl: "peerQueueTtl", queueDropped: "peerQueueDropped", queued: "outboxLength" };
    assert.deepEqual(
      warnings,
      Object.entries(renamed).map(([old, now]) => `monument_ws: ${old} is deprecated and will be removed in 1.0; use ${now}`),
    );
    client.close();
    again.close();
  });

  test("relative URLs follow the page's scheme; resume is a query parameter", () => {
    assert.equal(socketUrl("/ws", null, "https://example.test/app/"), "wss://example.test/ws");
    assert.equal(socketUrl("/ws?a=1", "s", "http://example.test/"), "ws://example.test/ws?a=1&resume=s");
  });
});
