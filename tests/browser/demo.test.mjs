// The demo page (the app template's GET /) in a real headless Chromium against a real server.
import assert from "node:assert/strict";
import { copyFileSync, readFileSync } from "node:fs";
import path from "node:path";
import { after, before, describe, test } from "node:test";

import {
  ROOT,
  artifact,
  chromiumMissing,
  launchChromium,
  needs,
  startServer,
  texts,
  waitForText,
} from "./harness.mjs";

describe("the demo page in Chromium", needs(chromiumMissing), () => {
  let server, browser;
  const pages = [];

  before(async () => {
    server = await startServer();
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function open(name) {
    const page = await browser.open(server.url(`/?name=${name}`));
    pages.push(page);
    return page;
  }

  test("the page connects: #status reads connected", async () => {
    const page = await open("Ada");
    await waitForText(page, "#status", "connected");
    assert.match(await page.textContent("#client-id"), /^[\w-]{8}$/);
  });

  test("two pages chat and each sees the other in presence", async () => {
    const [ada] = pages;
    const grace = await open("Grace");
    await waitForText(grace, "#status", "connected");
    for (const page of [ada, grace]) {
      await page.waitForFunction(() => document.querySelectorAll("#presence li").length === 2, null, { polling: 50 });
      assert.deepEqual((await texts(page, "#presence li")).sort(), ["Ada", "Grace"]);
    }
    await ada.bringToFront(); // actions wait for animation frames, which background pages lack
    await ada.fill("#chat-input", "hello Grace");
    await ada.press("#chat-input", "Enter");
    await grace.bringToFront();
    await grace.fill("#chat-input", "hi Ada");
    await grace.click("#chat-form button");
    for (const page of [ada, grace]) {
      await page.waitForFunction(() => document.querySelectorAll("#messages li").length === 2, null, { polling: 50 });
      assert.deepEqual(await texts(page, "#messages li"), ["Adahello Grace", "Gracehi Ada"]);
    }
  });

  test("a member whose tab closed is listed as away, not counted as here", async () => {
    const [ada] = pages;
    const lovelace = await open("Lovelace");
    await waitForText(lovelace, "#status", "connected");
    await ada.waitForFunction(() => document.querySelectorAll("#presence li").length === 3, null, { polling: 50 });
    await lovelace.close();
    await ada.waitForFunction(
      () => document.querySelectorAll("#away li").length === 1 && document.getElementById("presence-count").textContent === "2",
      null,
      { polling: 100, timeout: 20000 },
    );
    assert.deepEqual(await texts(ada, "#away li"), ["Lovelace"]);
    assert.deepEqual((await texts(ada, "#presence li")).sort(), ["Ada", "Grace"]);
    assert.equal(await ada.textContent("#away-count"), "1");
  });

  test("the data:get:greeting result renders, over the socket as over HTTP", async () => {
    const [page] = pages;
    await waitForText(page, "#ws-greeting", /Hello from monument_ws/);
    assert.equal(await page.textContent("#ws-greeting"), await page.textContent("#http-greeting"));
  });

  test("a streamed reply renders chunk by chunk as it arrives", async () => {
    const [page] = pages;
    await page.bringToFront();
    // Record what the element shows after each change, to prove it grows one chunk at a time.
    await page.evaluate(() => {
      window.seen = [];
      new MutationObserver(() => window.seen.push(document.getElementById("countdown-out").textContent))
        .observe(document.getElementById("countdown-out"), { childList: true });
    });
    await page.click("#countdown");
    await waitForText(page, "#countdown-out", "54321lift-off");
    const seen = await page.evaluate(() => window.seen);
    for (const state of ["5", "54", "543", "5432", "54321"]) assert.ok(seen.includes(state), `never showed ${state}: ${seen}`);
  });

  test("a call and a server call: echo, then greet-me asks the page for its name", async () => {
    const [page] = pages;
    await page.fill("#echo-input", "ping?");
    await page.click("#echo-form button");
    await waitForText(page, "#echo-reply", '"ping?"');
    await page.fill("#name", "Hopper");
    await page.click("#greet-form button");
    await waitForText(page, "#greeting-reply", "Hello, Hopper!");
  });

  test("a screenshot of the demo is saved (tests/browser/artifacts/demo.png)", async () => {
    const [page] = pages;
    const file = artifact("demo.png");
    await page.screenshot({ path: file, fullPage: true });
    const png = readFileSync(file);
    assert.deepEqual([...png.subarray(1, 4)], [0x50, 0x4e, 0x47]); // "PNG"
    assert.ok(png.length > 20_000, `a real page, not a blank one (${png.length} bytes)`);
    if (process.env.UPDATE_SCREENSHOT) copyFileSync(file, path.join(ROOT, "docs", "demo.png"));
  });

  test("no page logged an error", () => {
    assert.deepEqual(pages.flatMap((p) => p.errors), []);
  });
});
