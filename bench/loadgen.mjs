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
};
const SUB_ACK = 900000001;
const FANOUT_ACK = 900000002;

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

/** Open `n` sockets, at most `parallel` handshakes at a time. */
async function openMany(adapter, host, n, parallel = 100) {
  const sockets = [];
  let next = 0;
  async function worker() {
    while (next < n) {
      next++;
      sockets.push(await open(adapter, host));
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  return sockets;
}

/** Send `frame` and wait for the reply whose id is `id` (used before the measured phase). */
function ask(adapter, ws, frame, id) {
  return new Promise((resolve) => {
    const listener = (data) => {
      if (adapter.decode(data.toString(), ws).reply === id) {
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

/** `sockets` subscribers; one extra socket asks the server to send `count` messages to them. */
async function fanout(adapter) {
  const sockets = await openMany(adapter, spec.host, spec.sockets);
  await Promise.all(sockets.map((ws) => ask(adapter, ws, adapter.subscribe(), "s")));
  const control = await open(adapter, spec.host);
  const expected = spec.sockets * spec.count;
  let received = 0;
  let start = 0;
  const latencies = [];
  let finish;
  const finished = new Promise((resolve) => (finish = resolve));
  for (const ws of sockets) {
    ws.on("message", (data) => {
      if (adapter.decode(data.toString(), ws).delivery === undefined) return;
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
  report({ operations: received, expected, wall_s: wall, timed_out: outcome === "timeout", ...summary(latencies) });
  for (const ws of [...sockets, control]) ws.terminate();
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
