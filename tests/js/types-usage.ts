// A TypeScript user of monument.js: tests/js/types.test.mjs type-checks this file (never runs it)
// against the shipped monument.d.ts. Every @ts-expect-error must be an error, so declarations
// that decay to `any` fail the test too.
import {
  AuthFailed,
  Client,
  CloseCode,
  Forbidden,
  MonumentError,
  type FrameHook,
  type Message,
  type Queued,
} from "../../monument_ws/static/monument.js";

export async function use(): Promise<void> {
  const client = new Client("/ws", { outboxLimit: 50, peerQueueSize: 10, peerQueueTtl: 60, callTimeout: 5, connect: false });
  const stamp: FrameHook = (frame) => {
    frame.sender = "ts";
  };
  const removeStamp: () => void = client.outgoing(stamp);
  client.incoming((frame) => {
    if (frame.data === "secret") throw new Forbidden("screened");
    return { ...frame, seen: true };
  });
  client.listen((frame: unknown) => console.log(frame));
  client.on("ws:close", (data) => {
    if (data.code === CloseCode.KICKED) console.log("kicked:", data.reason);
  });
  await client.connect();
  const seq: number = await client.enqueue({ kind: "order" });
  const watched: boolean = await client.unwatch("data:get:prices");
  const taken: Queued | null = client.consume((data) => data.kind === "note");
  const waiting: number = client.enqueued + client.peerQueueDropped + client.refused + client.outboxLength;
  const room = await client.subscribe("chat", (message: Message) => console.log(message.offset));
  const offset: number = await client.publish("chat", "message", { text: "hi" });
  await client.publish("chat", "message", "not to me", { excludeSelf: true });
  const once: number = await client.publish("chat", "message", "once", { idempotencyKey: "m-1" });
  for await (const chunk of client.stream("countdown", 3)) console.log(chunk);
  try {
    await client.call("greet-me", null, { timeout: 1, retry: false });
  } catch (error) {
    if (error instanceof MonumentError) console.log(error.code, error.remote);
  }
  console.log(seq, watched, taken?.seq, waiting, room.recovered, offset, client.closeCode, client.closeReason);
  removeStamp();
  const spread = new Client(["ws://a.example/ws", new URL("ws://b.example/ws")], { connect: false });
  const current: string | URL = spread.url;
  const every: Array<string | URL> = spread.urls;
  console.log(current, every);
  // Code written before the renames still compiles (the old names are deprecated).
  const old = new Client("/ws", { queueLimit: 50, queueSize: 10, queueTtl: 60, connect: false });
  old.queueLimit = old.queueSize + old.queueTtl + old.queueDropped + old.queued;
  // @ts-expect-error the outbox's length is read-only
  client.outboxLength = 0;
  // @ts-expect-error the URL in use is read-only: the client moves along `urls` by itself
  spread.url = "ws://c.example/ws";
  // @ts-expect-error a call needs its event name
  await client.call();
  // @ts-expect-error the internals are private
  console.log(client._calls);
  // @ts-expect-error consume takes a filter function
  client.consume("note");
  // @ts-expect-error enqueue resolves with a number
  const wrong: string = await client.enqueue(1);
  console.log(wrong);
  // Staged auth, extra keys and retry control.
  const capped = new Client("/ws", { maxRetries: 5, retryInterval: 2, connect: false });
  const stage: string | null = capped.stage;
  capped.on("ws:stage", (change) => console.log(change.stage, change.previous, stage));
  try {
    await capped.auth("answer", { answer: "sesame" });
  } catch (error) {
    if (error instanceof AuthFailed) console.log(error.stage, error.code);
  }
  capped.tell("authorize", null, { extra: { credentialsObj: { user: "ada" } } });
  await capped.call("authorize", null, { extra: { credentialsObj: { user: "ada" } } });
  // @ts-expect-error a stage is a string
  await capped.auth(1);
  // @ts-expect-error extra keys are an object
  capped.tell("authorize", null, { extra: "credentials" });
  client.close();
}
