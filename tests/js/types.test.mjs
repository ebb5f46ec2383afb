// monument.d.ts, the browser client's TypeScript declarations: shipped current, made from a
// monument.js that tsc --checkJs finds no error in, and usable from TypeScript. Uses the
// TypeScript pinned in tests/browser/package.json (scripts/test-js installs it).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, test } from "node:test";

import { ROOT, needs } from "../browser/harness.mjs";

const TSC = path.join(ROOT, "tests", "browser", "node_modules", ".bin", "tsc");
const CONFIG = path.join(ROOT, "tests", "js", "tsconfig.json");
const SHIPPED = path.join(ROOT, "monument_ws", "static", "monument.d.ts");

/** Run tsc with `args`; fail with its output unless it exits 0. */
function tsc(...args) {
  const result = spawnSync(TSC, args, { cwd: ROOT, encoding: "utf8" });
  assert.equal(result.status, 0, `tsc ${args.join(" ")}:\n${result.stdout}${result.stderr}`);
}

describe("TypeScript declarations", needs(existsSync(TSC) ? null : "typescript is not installed: cd tests/browser && npm ci"), () => {
  test("tsc --checkJs (strict) finds no error in monument.js", () => {
    tsc("-p", CONFIG, "--noEmit");
  });

  test("the shipped monument.d.ts is what scripts/gen-types makes of monument.js now", () => {
    const out = mkdtempSync(path.join(tmpdir(), "monument-dts-"));
    try {
      tsc("-p", CONFIG, "--outDir", out);
      const fresh = readFileSync(path.join(out, "monument.d.ts"), "utf8");
      assert.ok(existsSync(SHIPPED), "monument_ws/static/monument.d.ts is missing: run scripts/gen-types");
      assert.ok(fresh === readFileSync(SHIPPED, "utf8"), "monument_ws/static/monument.d.ts is stale: run scripts/gen-types");
      assert.match(fresh, /consume\(accept\?: \(data: any\) => boolean\): Queued \| null;/);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });

  test("a strict TypeScript program type-checks against the declarations, and misuse does not", () => {
    tsc("--noEmit", "--strict", "--target", "es2022", "--module", "es2022", "--moduleResolution", "bundler",
      "--lib", "es2022,dom", path.join(ROOT, "tests", "js", "types-usage.ts"));
  });
});
