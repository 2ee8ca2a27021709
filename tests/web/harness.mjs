// What every browser test needs: the real flywheel binary on a free port with a fresh data directory, and
// Debian's Chromium through Playwright.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

export const artifacts = join(import.meta.dirname, "test-results");

/** Starts `flywheel up` with `extraArgs` and waits for /readyz; resolves to { server, base }. */
export async function startServer(extraArgs = []) {
  const binary = process.env.FLYWHEEL_BIN;
  const models = process.env.FLYWHEEL_MODELS_DIR;
  assert.ok(binary && models, "set FLYWHEEL_BIN and FLYWHEEL_MODELS_DIR (scripts/test does)");
  mkdirSync(artifacts, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), "flywheel-web-"));
  const server = spawn(binary, ["up", "--listen", "127.0.0.1:0", "--data-dir", dataDir, "--models-dir", models,
    ...extraArgs], { stdio: ["ignore", "ignore", "pipe"] });
  const base = await new Promise((resolve, reject) => {
    let log = "";
    const timer = setTimeout(() => reject(new Error(`server did not start:\n${log}`)), 60_000);
    server.stderr.on("data", (data) => {
      log += data;
      const match = log.match(/listening on (http:\/\/\S+)/);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    server.on("exit", (code) => reject(new Error(`server exited with ${code}:\n${log}`)));
  });
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const ready = await fetch(`${base}/readyz`).then((r) => r.ok, () => false);
    if (ready) return { server, base };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("server did not become ready");
}

/** Launches headless Chromium. */
export function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ],
  });
}

/** Stops the server with SIGTERM and checks it shut down cleanly. */
export async function stopServer(server) {
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.on("exit", resolve));
    server.kill("SIGTERM");
    assert.equal(await exited, 0, "the server should shut down cleanly");
  }
}
