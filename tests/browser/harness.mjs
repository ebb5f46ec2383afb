// Browser-test harness, shared by every test that needs a real Chromium or a real server:
//
//   import { launchChromium, startServer, skipUnless } from "./harness.mjs";
//
//   const server = await startServer();                     // the demo app on a free port
//   const browser = await launchChromium();                  // Debian's /usr/bin/chromium
//   const page = await browser.open(server.url("/"));        // waits for the load event
//   await waitForText(page, "#status", "connected");
//   await browser.close(); await server.stop();
//
// Chromium is driven by playwright-core with executablePath, never a downloaded build.
// Nothing here measures time: waits are generous deadlines for states to be reached.

import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
export const PYTHON = process.env.MONUMENT_WS_PYTHON || path.join(ROOT, ".venv", "bin", "python");
export const REDIS_URL = process.env.MONUMENT_WS_TEST_REDIS || "redis://127.0.0.1:6379/0";
/** Screenshots and other artifacts of the browser tests (gitignored). */
export const ARTIFACTS = path.join(ROOT, "tests", "browser", "artifacts");
/** A generous deadline for something that should happen (never a speed claim). */
export const DEADLINE_MS = 15_000;

const CI = ["1", "true", "yes"].includes(String(process.env.CI).toLowerCase());

/**
 * node:test options for a suite that needs something: skipped with `reason` when it is
 * missing, except in CI (CI=true), where the suite runs and fails on what is missing.
 * @param {string | null} reason null when nothing is missing
 */
export function needs(reason) {
  return reason && !CI ? { skip: reason } : {};
}

export const chromiumMissing = existsSync(CHROMIUM)
  ? null
  : `${CHROMIUM} is missing: scripts/ensure-chromium installs Debian's chromium (as root)`;

/**
 * Launch headless Chromium with a fresh profile. Returns `{ context, open(url), close() }`;
 * `open` gives a Playwright Page whose console errors are collected in `page.errors`.
 */
export async function launchChromium() {
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(path.join(tmpdir(), "monument-chromium-"));
  // launchPersistentContext is how Playwright passes a --user-data-dir of our choosing.
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1100, height: 720 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      // Several pages share one window; background pages must not be throttled.
      "--disable-background-timer-throttling",
      "--disable-backgrounding-occluded-windows",
      "--disable-renderer-backgrounding",
    ],
  });
  context.setDefaultTimeout(DEADLINE_MS);
  return {
    context,
    async open(url) {
      const page = await context.newPage();
      page.errors = [];
      page.on("pageerror", (error) => page.errors.push(String(error)));
      page.on("console", (msg) => {
        if (msg.type() === "error") page.errors.push(msg.text());
      });
      await page.goto(url);
      return page;
    },
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/**
 * Wait until `selector`'s text content equals `text` (a string) or matches it (a RegExp),
 * failing after `timeout` ms (default DEADLINE_MS).
 */
export async function waitForText(page, selector, text, timeout = DEADLINE_MS) {
  await page.waitForFunction(
    ([sel, source, flags]) => {
      const content = document.querySelector(sel)?.textContent ?? "";
      return flags === null ? content === source : new RegExp(source, flags).test(content);
    },
    [selector, text instanceof RegExp ? text.source : text, text instanceof RegExp ? text.flags : null],
    { timeout, polling: 50 }, // rAF polling stalls in background pages
  );
}

/** The text contents of every element matching `selector`, in document order. */
export function texts(page, selector) {
  return page.$$eval(selector, (nodes) => nodes.map((n) => n.textContent));
}

/** A TCP port nobody listens on right now (on 127.0.0.1). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Run `monument-ws run APP` (default: the demo app) on 127.0.0.1 in a subprocess and
 * wait until it serves GET /. `options.args` are extra CLI flags (every config key is one).
 * Returns `{ port, url(path), stop(), restart() }`; `stop` sends SIGTERM (a graceful
 * shutdown: sockets get 1001) and waits for the process to exit.
 */
export async function startServer({ app, args = [], port } = {}) {
  port = port ?? (await freePort());
  const argv = ["-m", "monument_ws", "run", ...(app ? [app] : []), "--host", "127.0.0.1", "--port", String(port), "--upgrade-rate", "0", ...args];
  const server = {
    port,
    process: null,
    log: "",
    url: (p = "/") => `http://127.0.0.1:${port}${p}`,
    async start() {
      const child = spawn(PYTHON, argv, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
      this.process = child;
      child.stdout.on("data", (d) => { this.log += d; });
      child.stderr.on("data", (d) => { this.log += d; });
      const exited = new Promise((resolve) => child.once("exit", resolve));
      this.exited = exited;
      const deadline = Date.now() + DEADLINE_MS;
      for (;;) {
        if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode}):\n${this.log}`);
        try {
          const response = await fetch(this.url("/"));
          if (response.ok) return this;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`the server did not come up:\n${this.log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      const child = this.process;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await this.exited;
    },
    async restart() {
      await this.stop();
      return this.start();
    },
  };
  return server.start();
}

/** A unique Redis key prefix for one test; `cleanRedis(prefix)` deletes its keys. */
export function redisPrefix() {
  return `mwsbrowser-${process.pid}-${Math.random().toString(16).slice(2, 10)}`;
}

/** Whether a Redis answers PING at 127.0.0.1:6379 (scripts/ensure-redis starts one). */
export function redisAnswers() {
  return new Promise((resolve) => {
    const socket = net.connect(6379, "127.0.0.1");
    socket.setTimeout(1000);
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.once("data", (d) => { socket.destroy(); resolve(String(d).startsWith("+PONG")); });
    socket.once("error", () => resolve(false));
    socket.once("timeout", () => { socket.destroy(); resolve(false); });
  });
}

export function cleanRedis(prefix) {
  spawnSync(PYTHON, ["-c", [
    "import redis, sys",
    "r = redis.Redis.from_url(sys.argv[1])",
    "keys = list(r.scan_iter(sys.argv[2] + ':*'))",
    "keys and r.delete(*keys)",
  ].join("\n"), REDIS_URL, prefix]);
}

/** Run the monument-ws CLI (e.g. `publish`) to completion; throws with its output on failure. */
export function cli(...args) {
  const result = spawnSync(PYTHON, ["-m", "monument_ws", ...args], { cwd: ROOT, encoding: "utf8" });
  if (result.status !== 0) throw new Error(`monument-ws ${args.join(" ")} failed:\n${result.stdout}${result.stderr}`);
  return result.stdout;
}

export function artifact(name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}
