// The server restarts under an open page: the page reconnects by itself, resumes its
// client id and recovers the chat messages published while it was away (Redis keeps the
// history across the restart).
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import {
  REDIS_URL,
  chromiumMissing,
  cleanRedis,
  cli,
  launchChromium,
  needs,
  redisAnswers,
  redisPrefix,
  startServer,
  texts,
  waitForText,
} from "./harness.mjs";

const redisMissing = (await redisAnswers()) ? null : "no Redis answers on 127.0.0.1:6379 (scripts/ensure-redis starts one)";

describe("a server restart under the demo page (Redis broker)", needs(chromiumMissing || redisMissing), () => {
  const prefix = redisPrefix();
  const broker = ["--broker", REDIS_URL, "--broker-prefix", prefix];
  let server, browser;

  before(async () => {
    // A fixed secret: resume secrets issued before the restart are still valid after it.
    server = await startServer({ args: [...broker, "--secret", "browser-test-secret"] });
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
    cleanRedis(prefix);
  });

  test("the page reconnects by itself and recovers the messages published meanwhile", async () => {
    const page = await browser.open(server.url("/?name=Ada"));
    await waitForText(page, "#status", "connected");
    await page.fill("#chat-input", "before the restart");
    await page.press("#chat-input", "Enter");
    await page.waitForFunction(() => document.querySelectorAll("#messages li").length === 1, null, { polling: 50 });
    const clientId = await page.evaluate(() => window.monument.clientId);

    await server.stop();
    await waitForText(page, "#status", "reconnecting…");
    // Published through the broker while no server runs (as another process would).
    for (const text of ["while you were away", "and another one"]) {
      cli("publish", "chat", "message", JSON.stringify({ name: "Bot", text }), ...broker);
    }
    await server.start();

    // The page retries with backoff (full jitter, ceiling doubling up to backoffMax = 30 s), so
    // after a long downtime its next attempt may be up to 30 s away: a deadline beyond that.
    await waitForText(page, "#status", "connected", 60_000);
    await waitForText(page, "#recovery", "Reconnected: 2 missed messages recovered.");
    assert.deepEqual(await texts(page, "#messages li"), [
      "Adabefore the restart",
      "Botwhile you were away",
      "Botand another one",
    ]);
    const offsets = await page.$$eval("#messages li", (lis) => lis.map((li) => Number(li.dataset.offset)));
    assert.deepEqual(offsets, [1, 2, 3]);
    assert.equal(await page.evaluate(() => window.monument.clientId), clientId, "resumed the same client id");
    assert.equal(await page.evaluate(() => window.monument.subscriptions.chat.recovered), true);

    // Still live after the restart: a new message reaches the page once.
    await page.fill("#chat-input", "after the restart");
    await page.press("#chat-input", "Enter");
    await page.waitForFunction(() => document.querySelectorAll("#messages li").length === 4, null, { polling: 50 });
    assert.deepEqual(page.errors.filter((e) => !e.includes("WebSocket")), []);
  });
});
