// The load generator: Node's `ws` package, one process, pinned to its own core by bench/run.py.
//
//   node bench/loadgen.mjs '<json spec>'
//
// It is not our client on purpose: the same generator drives every server, so the servers are
// compared and not the clients, and a slow spot in monument_ws's own client could not flatter or
// hide a server. It speaks each server's wire format by hand (monument's JSON frames, raw text
// for aiohttp, Engine.IO 4 / Socket.IO 5 packets) and never offers permessage-deflate.
//
// Protocol with the runner, one line each on stdout: `go` when the measured phase starts (the
// runner reads the server's CPU time then), `stop` when it ends, then one JSON line of results.
// In the idle scenario it prints `go` once every socket is open and holds them until stdin closes.

import { performance } from "node:perf_hooks";
import WebSocket from "ws";

const spec = JSON.parse(process.argv[2]);
const PAYLOAD = "x".repeat(spec.payload ?? 64);

/** Per server: URL path, handshake, frame encoders and one decoder. */
const ADAPTERS = {
  monument: {
    path: "/ws",
    // The first frame is ws:welcome; the socket is usable once it arrived.
    handshake: (ws, next) => next(),
    request: (id, data) => JSON.stringify({ event: "echo", id, data }),
    subscribe: () => JSON.stringify({ event: "ws:subscribe", id: "s", data: { channel: "bench" } }),
    trigger: (count) =>
      JSON.stringify({ event: "fanout", id: "f", data: { count, payload: PAYLOAD } }),
    publish: (id, data) =>
      JSON.stringify({ event: "ws:publish", id, data: { channel: "bench", event: "tick", data } }),
    decode(text) {
      const frame = JSON.parse(text);
      if (frame.channel !== undefined) return { delivery: frame.data };
      return { reply: frame.id };
    },
  },
  aiohttp: {
    path: "/ws",
    handshake: async () => {},
    request: (id, data) => JSON.stringify({ id, data }),
    subscribe: () => "sub",
    trigger: (count) => `fanout:${count}:${PAYLOAD}`,
    publish: (id, data) => `pub:${JSON.stringify(data)}`,
    decode(text) {
      if (text === "subscribed") return { reply: "s" };
      const frame = JSON.parse(text);
      if (frame.id !== undefined) return { reply: frame.id };
      return { delivery: frame };
    },
  },
  socketio: {
    path: "/socket.io/?EIO=4&transport=websocket",
    // Engine.IO open packet "0{...}", then connect to the default namespace: "40" -> "40{sid}".
    handshake: async (ws, next) => {
      await next();
      ws.send("40");
      await next();
    },
    request: (id, data) => `42${id}${JSON.stringify(["echo", data])}`,
    subscribe: () => `42${SUB_ACK}["sub"]`,
    trigger: (count) => `42${FANOUT_ACK}${JSON.stringify(["fanout", { count, payload: PAYLOAD }])}`,
    publish: (id, data) => `42${JSON.stringify(["pub", data])}`,
    decode(text, ws) {
      if (text === "2") {
        ws.send("3"); // Engine.IO ping
        return {};
      }
      if (text.startsWith("43")) {
        const bracket = text.indexOf("[");
        JSON.parse(text.slice(bracket)); // decode the ack's payload like every other server's
        const id = Number(text.slice(2, bracket));
        return { reply: id === SUB_ACK ? "s" : id === FANOUT_ACK ? "f" : id };
      }
      if (text.startsWith("42")) return { delivery: JSON.parse(text.slice(2))[1] };
      return {};
    },
  },
  // The three formats endpoints speak (docs/protocol.md, "Endpoints and codecs"), served by the
  // monument server with endpoints on (bench/servers.py, monument+formats). Fan-out only.
  "serverless-sockets": {
    path: "/ss",
    binary: true, // every frame binary: [u32 BE whole length][type][event length][event][JSON]
    handshake: async () => {}, // no welcome in this format
    subscribe: () => ssFrame("ws:subscribe", { channel: "bench" }),
    decode(buf) {
      const type = buf[4];
      const end = 6 + buf[5];
      const event = buf.toString("utf8", 6, end);
      const payload = buf.length > end ? JSON.parse(buf.toString("utf8", end)) : null;
      if (type === SS_BROADCAST && payload?.channel !== undefined && payload.offset !== undefined)
        return { delivery: payload.data };
      if (type === SS_MESSAGE && event === "ws:subscribe") return { reply: "s" };
      return {};
    },
  },
  "super-scaled-sockets": {
    path: "/sss",
    // BEGIN once after the socket opens, answered with BEGIN; heartbeats are off (`h` answered anyway).
    handshake: async (ws, next) => {
      ws.send(JSON.stringify({ sys: SSS_BEGIN }));
      while (JSON.parse(await next()).sys !== SSS_BEGIN);
    },
    subscribe: () => JSON.stringify({ sys: SSS_SUBSCRIBE, channel: "bench", query: null, id: "s" }),
    decode(text, ws) {
      if (text === "h") {
        ws.send("h");
        return {};
      }
      const frame = JSON.parse(text);
      if (frame.sys === SSS_FEED) return { delivery: frame.msg };
      if (frame.sys === SSS_SUBSCRIBE && frame.result === true) return { reply: frame.id };
      return {};
    },
  },
  owlmeans: {
    path: "/owl",
    // The first envelope is the welcome: {type: "system", event: "welcome"}.
    handshake: (ws, next) => next(),
    subscribe: () =>
      JSON.stringify({ type: "call", id: "s", method: "ws:subscribe", payload: [{ channel: "bench" }], timeout: 0 }),
    decode(text) {
      const envelope = JSON.parse(text);
      if (envelope.type === "event" && envelope.offset !== undefined) return { delivery: envelope.payload };
      if (envelope.type === "result") return { reply: envelope.id };
      return {};
    },
  },
};
const SUB_ACK = 900000001;
const FANOUT_ACK = 900000002;
const SS_MESSAGE = 0;
const SS_BROADCAST = 1;
const SSS_SUBSCRIBE = 1;
const SSS_BEGIN = 3;
const SSS_FEED = 8;

/** One serverless-sockets client frame: a request under `event` with a JSON payload. */
function ssFrame(event, payload) {
  const name = Buffer.from(event);
  const body = Buffer.from(JSON.stringify(payload));
  const head = Buffer.alloc(6);
  head.writeUInt32BE(6 + name.length + body.length, 0);
  head[4] = SS_MESSAGE;
  head[5] = name.length;
  return Buffer.concat([head, name, body]);
}

/** What an adapter's decode takes: the bytes for a binary format, else the text. */
const wire = (adapter, data) => (adapter.binary ? data : data.toString());

async function open(adapter, host) {
  const ws = new WebSocket(`ws://${host}${adapter.path}`, { perMessageDeflate: false });
  // A server's first frame can arrive in the same read as the upgrade response, so frames are
  // collected from the start and handed to the handshake one by one.
  const inbox = [];
  let waiting = null;
  const collect = (data) => {
    if (waiting) {
      waiting(data.toString());
      waiting = null;
    } else inbox.push(data.toString());
  };
  ws.on("message", collect);
  const next = () =>
    inbox.length ? Promise.resolve(inbox.shift()) : new Promise((resolve) => (waiting = resolve));
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  await adapter.handshake(ws, next);
  ws.off("message", collect);
  return ws;
}

/** Open `n` sockets, at most `parallel` handshakes at a time. `adapter` may be a function of
 * the socket's number (0 to n-1) giving its adapter; then `{ws, i}` pairs come back. */
async function openMany(adapter, host, n, parallel = 100) {
  const sockets = [];
  let next = 0;
  async function worker() {
    while (next < n) {
      const i = next++;
      if (typeof adapter === "function") sockets.push({ ws: await open(adapter(i), host), i });
      else sockets.push(await open(adapter, host));
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  return sockets;
}

/** Send `frame` and wait for the reply whose id is `id` (used before the measured phase). */
function ask(adapter, ws, frame, id) {
  return new Promise((resolve) => {
    const listener = (data) => {
      if (adapter.decode(wire(adapter, data), ws).reply === id) {
        ws.off("message", listener);
        resolve();
      }
    };
    ws.on("message", listener);
    ws.send(frame);
  });
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(latencies) {
  const sorted = Float64Array.from(latencies).sort();
  return { p50_ms: percentile(sorted, 50), p99_ms: percentile(sorted, 99) };
}

function report(result) {
  console.log("stop");
  console.log(JSON.stringify(result));
}

/** Every socket keeps one echo request in flight for `duration` seconds after a warm-up. */
async function rpc(adapter) {
  const sockets = await openMany(adapter, spec.host, spec.sockets);
  let measuring = false;
  let done = 0;
  let stopped = false;
  const latencies = [];
  for (const ws of sockets) {
    let id = 1;
    let sent = 0;
    const fire = () => {
      sent = performance.now();
      ws.send(adapter.request(id, PAYLOAD));
    };
    ws.on("message", (data) => {
      const { reply } = adapter.decode(data.toString(), ws);
      if (reply !== id) return;
      if (measuring) {
        done++;
        latencies.push(performance.now() - sent);
      }
      id++;
      if (!stopped) fire();
    });
    fire();
  }
  await sleep(spec.warmup * 1000);
  console.log("go");
  measuring = true;
  const start = performance.now();
  await sleep(spec.duration * 1000);
  measuring = false;
  stopped = true;
  const wall = (performance.now() - start) / 1000;
  report({ operations: done, wall_s: wall, ...summary(latencies) });
  for (const ws of sockets) ws.terminate();
}

/** `sockets` subscribers; one extra socket asks the server to send `count` messages to them.
 * With `spec.mix` (adapter names) the subscribers speak those formats in turn (socket i the
 * format i % n); every socket must get all `count` messages,
 * and the result says how many each format got. */
async function fanout(adapter) {
  const mix = (spec.mix ?? [spec.server]).map((name) => ADAPTERS[name]);
  const sockets = (await openMany((i) => mix[i % mix.length], spec.host, spec.sockets)).map(
    ({ ws, i }) => ({ ws, adapter: mix[i % mix.length], format: (spec.mix ?? [spec.server])[i % mix.length], got: 0 }),
  );
  await Promise.all(sockets.map(({ ws, adapter }) => ask(adapter, ws, adapter.subscribe(), "s")));
  const control = await open(adapter, spec.host); // the trigger goes in the server's own format
  const expected = spec.sockets * spec.count;
  let received = 0;
  let start = 0;
  const latencies = [];
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  for (const sub of sockets) {
    sub.ws.on("message", (data) => {
      if (sub.adapter.decode(wire(sub.adapter, data), sub.ws).delivery === undefined) return;
      sub.got++;
      received++;
      latencies.push(performance.now() - start);
      if (received === expected) finish();
    });
  }
  console.log("go");
  start = performance.now();
  control.send(adapter.trigger(spec.count));
  const deadline = sleep(spec.timeout * 1000).then(() => "timeout");
  const outcome = await Promise.race([finished, deadline]);
  const wall = (performance.now() - start) / 1000;
  const result = { operations: received, expected, wall_s: wall, timed_out: outcome === "timeout", ...summary(latencies) };
  if (spec.mix) {
    result.per_format = {};
    result.sockets_per_format = {};
    for (const { format, got } of sockets) {
      result.per_format[format] = (result.per_format[format] ?? 0) + got;
      result.sockets_per_format[format] = (result.sockets_per_format[format] ?? 0) + 1;
    }
    // Sockets that did not get exactly `count` messages (the runner fails the run on any).
    result.incomplete = sockets.filter(({ got }) => got !== spec.count).length;
  }
  report(result);
  for (const ws of [...sockets.map((s) => s.ws), control]) ws.terminate();
}

/** Open `sockets` and hold them until stdin closes; the runner reads the server's memory. */
async function idle(adapter) {
  const sockets = await openMany(adapter, spec.host, spec.sockets, 50);
  console.log("go");
  await new Promise((resolve) => {
    process.stdin.on("end", resolve);
    process.stdin.resume();
  });
  report({ operations: sockets.length });
  for (const ws of sockets) ws.terminate();
}

/** Publish on `host` at `rate` messages/s; `sockets` subscribers on `host2` measure publish->deliver. */
async function redis(adapter) {
  const sockets = await openMany(adapter, spec.host2, spec.sockets);
  await Promise.all(sockets.map((ws) => ask(adapter, ws, adapter.subscribe(), "s")));
  const publisher = await open(adapter, spec.host);
  publisher.on("message", () => {}); // publish acks
  const latencies = [];
  let received = 0;
  for (const ws of sockets) {
    ws.on("message", (data) => {
      const { delivery } = adapter.decode(data.toString(), ws);
      if (delivery?.t === undefined) return;
      received++;
      latencies.push(performance.now() - delivery.t);
    });
  }
  const total = Math.round(spec.rate * spec.duration);
  console.log("go");
  const start = performance.now();
  let sent = 0;
  // Keep the schedule by the clock, not by the timer: a late tick sends what is due.
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * spec.rate) + 1);
    while (sent < due) {
      sent++;
      publisher.send(adapter.publish(sent, { t: performance.now(), n: sent, payload: PAYLOAD }));
    }
    await sleep(2);
  }
  const expected = total * spec.sockets;
  const deadline = performance.now() + spec.timeout * 1000;
  while (received < expected && performance.now() < deadline) await sleep(5);
  const wall = (performance.now() - start) / 1000;
  report({ operations: received, expected, wall_s: wall, ...summary(latencies) });
  for (const ws of [...sockets, publisher]) ws.terminate();
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

const adapter = ADAPTERS[spec.server];
await { rpc, fanout, idle, redis }[spec.scenario](adapter);
process.exit(0);
