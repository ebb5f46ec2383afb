// The admin page (admin_token set) in a real headless Chromium: with the token it follows real
// clients live over its socket; without it (or with a wrong one) the socket is refused and the
// page shows no data. The clients are monument.js in Node, driven by the test.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";

import { Client } from "../../monument_ws/static/monument.js";
import { chromiumMissing, launchChromium, needs, startServer, texts, waitForText } from "./harness.mjs";

const TOKEN = "admin-test-token";
const ADMIN = "/_monument/admin";
const wsMissing = globalThis.WebSocket ? null : "this Node has no WebSocket (run with --experimental-websocket)";

/** Wait until the channels table has a row for `channel` with these subscriber and presence counts. */
async function waitForChannel(page, channel, subscribers, presence) {
  await page.waitForFunction(
    ([name, expected]) => [...document.querySelectorAll("#channels tbody tr")].some((tr) => {
      const cells = [...tr.children].map((td) => td.textContent);
      return cells[0] === name && cells[2] === expected[0] && cells[3] === expected[1];
    }),
    [channel, [String(subscribers), String(presence)]],
    { polling: 50 },
  );
}

describe("the admin page in Chromium", needs(chromiumMissing || wsMissing), () => {
  let server, browser;
  const clients = [];
  const dialogs = [];

  before(async () => {
    server = await startServer({ args: ["--admin-token", TOKEN] });
    browser = await launchChromium();
    // Without a token in the URL the page asks for one; the test answers nothing.
    browser.context.on("dialog", (dialog) => {
      dialogs.push(dialog.message());
      dialog.dismiss().catch(() => {});
    });
  });

  after(async () => {
    for (const client of clients) client.close();
    await browser?.close();
    await server?.stop();
  });

  async function connect() {
    const client = new Client(server.url("/ws"), { backoffInitial: 0.05 });
    clients.push(client);
    await client.ready;
    return client;
  }

  test("with the token it shows live sockets, channels with subscriber counts and presence", async () => {
    const page = await browser.open(server.url(`${ADMIN}#token=${TOKEN}`));
    await waitForText(page, "#status", "live");
    await waitForText(page, "#sockets-open", "0");
    assert.deepEqual(await texts(page, "#channels tbody tr"), []);

    const ada = await connect();
    await waitForText(page, "#sockets-open", "1");
    await page.waitForFunction((id) => document.querySelector("#sockets tbody")?.textContent.includes(id), ada.clientId, { polling: 50 });
    await ada.subscribe("chat", () => {}, { label: "Ada" });
    await waitForChannel(page, "chat", 1, 1);
    await waitForText(page, "#presence-count", "1");

    const grace = await connect();
    const room = await grace.subscribe("chat", () => {}, { label: "Grace" });
    await waitForText(page, "#sockets-open", "2");
    await waitForChannel(page, "chat", 2, 2);
    await waitForText(page, "#presence-count", "2");
    await waitForText(page, "#subscribers-count", "2");

    await room.unsubscribe(); // leaves presence at once (a close would only mark it disconnected)
    await waitForChannel(page, "chat", 1, 1);
    grace.close();
    await waitForText(page, "#sockets-open", "1");
    assert.equal(await page.textContent("#status"), "live");
    assert.deepEqual(page.errors, []);
  });

  test("without the token, or with a wrong one, the socket is refused and no data is shown", async () => {
    const wrong = await browser.open(server.url(`${ADMIN}#token=guess`));
    await waitForText(wrong, "#status", "wrong token");
    const none = await browser.open(server.url(ADMIN));
    await waitForText(none, "#status", "wrong token");
    assert.deepEqual(dialogs, ["admin token"], "the page asked for the token once, for the page without one");
    for (const page of [wrong, none]) {
      for (const id of ["#sockets-open", "#channels-count", "#subscribers-count", "#presence-count"]) {
        assert.equal(await page.textContent(id), "-", `${id} stays empty`);
      }
      assert.deepEqual(await texts(page, "#sockets tbody tr"), []);
      assert.doesNotMatch(await page.content(), new RegExp(TOKEN), "the page holds no token");
    }
  });
});
