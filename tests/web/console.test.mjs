// The console in a real browser: Debian's Chromium driven by Playwright against the real flywheel binary with a
// master key, after `flywheel simulate shoppers` has driven shopping sessions through the storefront.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import { artifacts, launchBrowser, startServer, stopServer } from "./harness.mjs";

const MASTER_KEY = "console-test-master-key";
let server;
let base;
let browser;

before(async () => {
  ({ server, base } = await startServer(["--master-key", MASTER_KEY]));
  const { stdout } = await promisify(execFile)(process.env.FLYWHEEL_BIN, [
    "simulate", "shoppers", "--target", base, "--rate", "20", "--sessions", "20", "--assistant-share", "0",
  ]);
  assert.match(stdout, /20 sessions .* 0 failed/);
  // One model call of the storefront's kind, so the tokens stage has figures whatever search used.
  const chat = await fetch(`${base}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${MASTER_KEY}`, "x-flywheel-feature": "console-test" },
    body: JSON.stringify({ model: "smollm2-135m-instruct", max_tokens: 4, messages: [{ role: "user", content: "Hi" }] }),
  });
  assert.equal(chat.status, 200);
  // Shopper events and ledger rows are written in batches within a few milliseconds; leave them time.
  await new Promise((r) => setTimeout(r, 1000));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
});

test("the console asks for the master key, then shows the loop with live figures", async () => {
  const page = await browser.newPage();
  await page.goto(base + "/console");
  await page.waitForURL(/\/console\/login$/);
  await page.getByLabel("Master key").fill("not-the-key");
  await page.getByRole("button", { name: "Sign in" }).click();
  assert.match(await page.getByRole("alert").textContent(), /not the master key/);

  await page.getByLabel("Master key").fill(MASTER_KEY);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/console$/);
  const figure = async (stage) => (await page.locator(`#stage-${stage} .figure`).textContent()).trim();
  assert.ok(Number.parseInt(await figure("shoppers"), 10) > 0, "shopper events are counted");
  assert.match(await figure("tokens"), /^[1-9]\d* tokens$/);
  assert.match(await figure("power"), /^[\d.]+ (kW|MW)$/);
  assert.match(await figure("cost"), /^\$[\d.]+\/h$/);
  assert.ok((await page.locator(".chart svg").count()) >= 2, "charts are drawn");
  await page.screenshot({ path: join(artifacts, "console-loop.png"), fullPage: true });

  await page.getByRole("link", { name: "Usage" }).click();
  await page.waitForURL(/\/console\/usage/);
  assert.match(await page.locator("#by-tenant").textContent(), /storefront/);
  assert.match(await page.locator("#by-model").textContent(), /smollm2-135m-instruct/);
  const features = await page.locator("#by-feature").textContent();
  assert.match(features, /search/, "hybrid search's query embeddings are the search feature");
  assert.match(features, /console-test/, "an HTTP caller's x-flywheel-feature");

  await page.getByRole("link", { name: "Forecast" }).click();
  await page.waitForURL(/\/console\/forecast/);
  assert.ok((await page.locator(".chart svg").count()) >= 1, "each model's forecast is charted");

  await page.getByRole("link", { name: "Fleet" }).click();
  await page.waitForURL(/\/console\/fleet/);
  assert.equal(await page.locator("#plan-sites tbody tr").count(), 3, "one row per site of the storefront fleet");
  assert.match(await page.locator("#live-placement").textContent(), /Fleet routing is off/);
  await page.getByLabel(/Plan for/).fill("50");
  await page.getByRole("button", { name: "Re-plan" }).click();
  await page.waitForURL(/growth=50/);
  assert.match(await page.locator("h2", { hasText: "Plan for" }).textContent(), /× 50/);
  assert.equal(await page.locator("#capacity tbody tr").count(), 5, "capacity at five multiples of the demand");
  assert.ok((await page.locator("#sensitivity tbody tr").count()) >= 4, "the plan's sensitivity");
  await page.screenshot({ path: join(artifacts, "console-fleet.png"), fullPage: true });

  await page.getByRole("link", { name: "Simulator" }).click();
  await page.waitForURL(/\/console\/simulate/);
  assert.equal(await page.locator("#replays tbody tr").count(), 6, "every policy on the plan's placement");
  assert.match(await page.locator("#replay-basis").textContent(), /model calls of the fleet.s models from this range, × 1,/);
  await page.getByLabel(/Replay/).fill("10");
  await page.getByRole("button", { name: "Replay" }).click();
  await page.waitForURL(/scale=10/);
  assert.match(await page.locator("#replay-basis").textContent(), /× 10,/);
  await page.screenshot({ path: join(artifacts, "console-simulator.png"), fullPage: true });
  await page.close();
});

test("the console lists keys, agent sessions with their traces, and sponsored products", async () => {
  const admin = { "content-type": "application/json", authorization: `Bearer ${MASTER_KEY}` };
  const key = await fetch(`${base}/admin/keys`, {
    method: "POST", headers: admin, body: JSON.stringify({ tenant: "acme", name: "web app", rpm: 60, budget_usd: 5 }),
  }).then((r) => r.json());
  const session = await fetch(`${base}/v1/agents/retail-service/sessions`, { method: "POST", headers: admin })
    .then((r) => r.json());
  assert.ok(session.id, JSON.stringify(session));

  const page = await browser.newPage();
  await page.setExtraHTTPHeaders({ authorization: `Bearer ${MASTER_KEY}` });
  await page.goto(base + "/console/keys");
  const keys = await page.locator("#keys").textContent();
  assert.match(keys, /acme/);
  assert.match(keys, /web app/);
  assert.ok(!keys.includes(key.key), "the secret is never shown");

  await page.getByRole("link", { name: "Agents" }).click();
  await page.waitForURL(/\/console\/agents$/);
  await page.getByRole("link", { name: session.id }).click();
  await page.waitForURL(new RegExp(`/console/agents/${session.id}$`));
  assert.match(await page.locator("main").textContent(), /retail-service/);
  await page.screenshot({ path: join(artifacts, "console-trace.png"), fullPage: true });

  await page.getByRole("link", { name: "Ads" }).click();
  await page.waitForURL(/\/console\/ads$/);
  assert.equal(await page.locator("#ads").count(), 1);
  await page.getByRole("link", { name: "Ask" }).click();
  await page.waitForURL(/\/console\/ask$/);
  await page.getByLabel("Question").fill("how many searches per day this week?");
  await page.getByRole("button", { name: "Ask" }).click();
  await page.waitForURL(/\/console\/ask\?q=/);
  assert.match(await page.locator("#answer").textContent(), /had the most searches/);
  assert.ok((await page.locator("#answer-rows tbody tr").count()) >= 1);
  await page.screenshot({ path: join(artifacts, "console-ask.png"), fullPage: true });
  const refused = await page.goto(base + "/console/ask?q=" + encodeURIComponent("what is the capital of France?"));
  assert.equal(refused.status(), 422);
  assert.match(await page.getByRole("alert").textContent(), /cannot answer/);
  const missing = await page.goto(base + "/console/agents/no-such-session");
  assert.equal(missing.status(), 404);
  await page.close();
});

test("the console refuses other keys and bad ranges with clear pages", async () => {
  const wrong = await fetch(`${base}/console`, { headers: { authorization: "Bearer nope" }, redirect: "manual" });
  assert.equal(wrong.status, 401);
  const anonymous = await fetch(`${base}/console/fleet`, { redirect: "manual" });
  assert.equal(anonymous.status, 303);
  const admin = { authorization: `Bearer ${MASTER_KEY}` };
  const badRange = await fetch(`${base}/console?hours=5`, { headers: admin });
  assert.equal(badRange.status, 400);
  assert.match(await badRange.text(), /hours must be one of/);
  const badScale = await fetch(`${base}/console/simulate?scale=5000`, { headers: admin });
  assert.equal(badScale.status, 400);
  const badGrowth = await fetch(`${base}/console/fleet?growth=-2`, { headers: admin });
  assert.equal(badGrowth.status, 400);
  const ok = await fetch(`${base}/console/usage?hours=24`, { headers: admin });
  assert.equal(ok.status, 200);
});
