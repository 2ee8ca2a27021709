// The storefront in a real browser: Debian's Chromium driven by Playwright against the real flywheel binary.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { artifacts, launchBrowser, startServer, stopServer } from "./harness.mjs";

let server;
let base;
let browser;

before(async () => {
  ({ server, base } = await startServer());
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await stopServer(server);
});

test("a shopper searches, opens a product and asks about it", async () => {
  const page = await browser.newPage();
  await page.goto(base + "/");
  const search = page.getByRole("searchbox");
  await search.fill("king poster bed");
  await search.press("Enter");
  await page.waitForURL(/\/search\?/);
  const results = page.locator('a[href^="/products/"]');
  assert.ok((await results.count()) >= 5, "expected several results");
  const firstName = (await results.first().textContent()).trim();
  assert.match(firstName.toLowerCase(), /bed/);
  await page.screenshot({ path: join(artifacts, "search-results.png"), fullPage: true });

  await results.first().click();
  await page.waitForURL(/\/products\//);
  assert.equal((await page.locator("h1").first().textContent()).trim(), firstName);
  await page.screenshot({ path: join(artifacts, "product-page.png"), fullPage: true });

  // Ask about the product: a plain form post answered by the embedded model.
  await page.getByLabel("Your question").fill("Is this a bed?");
  await page.getByRole("button", { name: "Ask" }).click();
  await page.waitForURL(/\/ask$/);
  const answer = page.locator(".answer-text");
  assert.ok((await answer.textContent()).trim().length > 0, "expected an answer");
  assert.equal((await page.locator("h1").first().textContent()).trim(), firstName);
  await page.screenshot({ path: join(artifacts, "product-answer.png"), fullPage: true });
  await page.close();
});

test("an unknown product is a friendly 404 page", async () => {
  const page = await browser.newPage();
  const response = await page.goto(base + "/products/does-not-exist");
  assert.equal(response.status(), 404);
  assert.match(await page.locator("body").textContent(), /not found/i);
  await page.close();
});

test("a shopper narrows a search with a facet", async () => {
  const page = await browser.newPage();
  await page.goto(base + "/search?q=chair");
  const before = (await page.getByRole("status").textContent()).trim();
  const facets = page.getByRole("navigation", { name: "Filters" });
  const outdoor = facets.getByRole("link", { name: /^Outdoor \(/ });
  await outdoor.click();
  await page.waitForURL(/filter=category%3AOutdoor/);
  const after = (await page.getByRole("status").textContent()).trim();
  assert.notEqual(after, before, "the filter changes the result count");
  assert.equal(await facets.locator('a[aria-current="true"]').count(), 1, "the chosen value is marked");
  await page.screenshot({ path: join(artifacts, "search-facet.png"), fullPage: true });
  await facets.getByRole("link", { name: "Clear filter" }).click();
  await page.waitForURL((url) => !url.search.includes("filter="));
  await page.close();
});

test("an advertiser's campaign shows a labelled sponsored product that a shopper clicks", async () => {
  const hits = await fetch(`${base}/api/search?q=king+poster+bed&mode=keyword&limit=3&ads=false`).then((r) => r.json());
  const created = await fetch(`${base}/admin/ads/campaigns`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      advertiser: "Acme Beds", name: "poster beds", daily_budget_usd: 5,
      products: hits.hits.map((hit) => hit.id), keywords: [{ value: "poster bed", bid_usd: 0.8 }],
    }),
  });
  assert.equal(created.status, 201);
  const campaign = await created.json();

  const page = await browser.newPage();
  await page.goto(base + "/search?q=king+poster+bed");
  const sponsored = page.getByRole("region", { name: "Sponsored products" });
  assert.match(await sponsored.locator(".sponsored-label").first().textContent(), /Sponsored/);
  await page.screenshot({ path: join(artifacts, "search-sponsored.png"), fullPage: true });
  const adName = (await sponsored.getByRole("link").first().textContent()).trim();
  await sponsored.getByRole("link").first().click();
  await page.waitForURL(/\/products\//);
  assert.equal((await page.locator("h1").first().textContent()).trim(), adName);
  await page.close();

  const report = await fetch(`${base}/admin/ads/report`).then((r) => r.json());
  const row = report.data.find((entry) => entry.campaign_id === campaign.id);
  assert.equal(row.clicks, 1, "the click is counted");
  assert.ok(row.spend_micros > 0 && row.spend_micros <= 800_000, "charged at most the bid");
});

test("a shopper asks the assistant, accepts its pick into the cart, and adds another from a product page", async () => {
  const page = await browser.newPage();
  await page.goto(base + "/");
  await page.getByRole("link", { name: "Assistant" }).click();
  await page.waitForURL(/\/assistant$/);
  await page.getByLabel("Your message").fill("I need a king size poster bed");
  await page.getByRole("button", { name: "Send" }).click();
  await page.waitForLoadState("load");
  const answer = (await page.locator(".turn-assistant .turn-text").last().textContent()).trim();
  assert.match(answer, /\[[^\]]+\] to your cart\?/, "the assistant offers its pick");
  const found = page.getByRole("list", { name: "Products in this answer" }).getByRole("link");
  assert.ok((await found.count()) >= 1, "the products found are listed");
  await page.screenshot({ path: join(artifacts, "assistant-answer.png"), fullPage: true });

  await page.getByRole("button", { name: "Yes, add it to my cart" }).click();
  await page.waitForLoadState("load");
  assert.match(await page.locator(".turn-assistant .turn-text").last().textContent(), /^Added .* to your cart\.$/);

  await page.getByRole("link", { name: "Cart" }).click();
  await page.waitForURL(/\/cart$/);
  assert.equal(await page.getByRole("list", { name: "Cart items" }).getByRole("listitem").count(), 1);

  await page.goto(base + "/products/13");
  await page.getByRole("button", { name: "Add to cart" }).click();
  await page.waitForURL(/\/cart$/);
  assert.equal(await page.getByRole("list", { name: "Cart items" }).getByRole("listitem").count(), 2);
  await page.screenshot({ path: join(artifacts, "cart.png"), fullPage: true });
  await page.close();
});

test("an advertiser creates a campaign on the advertise page and sees it reported", async () => {
  const page = await browser.newPage();
  await page.goto(base + "/advertise");
  await page.getByLabel("Advertiser").fill("Lamp Co");
  await page.getByLabel("Campaign name").fill("desk lamps");
  await page.getByLabel("Daily budget (USD)").fill("3");
  await page.getByLabel("Product ids (comma-separated)").fill("13, 4");
  await page.getByLabel("Keywords (comma-separated)").fill("lamp, desk lamp");
  await page.getByLabel("Bid per click (USD)").fill("0.5");
  await page.getByRole("button", { name: "Create campaign" }).click();
  await page.waitForURL(/\/advertise$/);
  const campaigns = page.getByRole("table", { name: "Campaigns" });
  assert.match(await campaigns.textContent(), /desk lamps/);
  await page.screenshot({ path: join(artifacts, "advertise.png"), fullPage: true });

  // A wrong product id is refused with the reason, and nothing is created.
  await page.getByLabel("Advertiser").fill("Lamp Co");
  await page.getByLabel("Campaign name").fill("bad one");
  await page.getByLabel("Daily budget (USD)").fill("3");
  await page.getByLabel("Product ids (comma-separated)").fill("no-such-product");
  await page.getByLabel("Keywords (comma-separated)").fill("lamp");
  await page.getByLabel("Bid per click (USD)").fill("0.5");
  await page.getByRole("button", { name: "Create campaign" }).click();
  assert.match(await page.getByRole("alert").textContent(), /no product 'no-such-product'/);
  assert.doesNotMatch(await page.getByRole("table", { name: "Campaigns" }).textContent(), /bad one/);
  await page.close();
});

test("a seller writes a listing from notes and sees its score", async () => {
  const page = await browser.newPage();
  await page.goto(base + "/sell");
  await page.getByLabel("Your notes").fill("solid oak writing desk, two drawers, 120 cm wide, natural finish");
  await page.getByRole("button", { name: "Write listing" }).click();
  await page.waitForLoadState("load");
  const listing = page.getByRole("article", { name: "Listing" });
  assert.ok((await listing.locator("h2").textContent()).trim().length > 0, "a title");
  assert.ok((await listing.locator("li").count()) >= 3, "bullets");
  assert.match(await listing.locator(".quality").textContent(), /Quality score: \d+ \/ 100/);
  await page.screenshot({ path: join(artifacts, "sell.png"), fullPage: true });
  await page.close();
});
