// The student page in Debian's headless Chromium (playwright-core drives the system
// browser; nothing is downloaded), against a real exam_server. Each scenario is checked
// in the database afterwards, through the teacher's list. Screenshots go to
// $WEB_ARTIFACTS (default: ./artifacts).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { ExamServer } from "./server.mjs";
import { ARTIFACTS, freshPage, launchBrowser } from "./browser.mjs";

let server;
let browser;
before(async () => {
  // A short lease: a submission a killed server's grader held is graded again soon
  // after the restart.
  server = await new ExamServer({
    args: (dir) => ["--queue", `sqlite://${dir}/queue.db?visibility_timeout=2s&commit_linger=5ms`],
  }).start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

// A fresh browser profile (its own localStorage) on the student page of `student`.
async function studentPage(student, { viewport = { width: 1000, height: 900 }, on = server } = {}) {
  const opened = await freshPage(browser, viewport);
  await opened.page.goto(`${on.url}/#exam=demo&token=${on.token(student)}`);
  await opened.page.locator("#answers").waitFor({ state: "visible" });
  return opened;
}

async function answer(page, choices = "BDACB") {
  for (let i = 0; i < choices.length; ++i) await page.check(`input[name="q${i + 1}"][value="${choices[i]}"]`);
}

const receiptShown = (page) => page.locator("#receipt").waitFor({ state: "visible", timeout: 20000 });

test("submit: the receipt at once, then graded with the score; a reload shows both again", async () => {
  const { context, page, problems } = await studentPage("p-plain");
  // The token left the address bar as soon as the page read it.
  assert.equal(new URL(page.url()).hash, "#exam=demo");
  await answer(page, "BDACBADCCA");
  await page.screenshot({ path: join(ARTIFACTS, "student-exam.png"), fullPage: true });
  await page.click("#submit");
  await receiptShown(page);
  const receipt = await page.textContent("#receipt-id");
  assert.match(receipt, /\S+/);
  assert.match(await page.textContent("#accepted-at"), /\d{4}-\d\d-\d\dT/);
  await page.locator("#status.graded").waitFor({ timeout: 20000 });
  assert.equal(await page.textContent("#status"), "Graded: score 100%");
  await page.screenshot({ path: join(ARTIFACTS, "student-graded.png") });
  await page.reload();
  await receiptShown(page);
  assert.equal(await page.textContent("#receipt-id"), receipt);
  await page.locator("#status.graded").waitFor({ timeout: 20000 });
  const rows = await server.settledRows("p-plain");
  assert.deepEqual(
    rows.map((r) => [r.receipt_id, r.score]),
    [[receipt, 100]],
  );
  assert.deepEqual(problems, []);
  await context.close();
});

test("a double click sends one submission", async () => {
  const { context, page } = await studentPage("p-double");
  await answer(page);
  await page.dblclick("#submit");
  await receiptShown(page);
  const rows = await server.settledRows("p-double");
  assert.equal(rows.length, 1);
  assert.equal(rows[0].receipt_id, await page.textContent("#receipt-id"));
  await context.close();
});

test("offline while submitting: busy, the key kept, the same key sent when back online", async () => {
  const { context, page } = await studentPage("p-offline");
  const keys = [];
  page.on("request", (r) => {
    if (r.method() === "POST") keys.push(r.headers()["idempotency-key"]);
  });
  await answer(page);
  await context.setOffline(true);
  await page.click("#submit");
  await page.locator("#notice.busy").waitFor({ timeout: 10000 });
  assert.match(await page.textContent("#notice"), /busy.*saved in this browser/);
  // In sight although the student is scrolled to the submit button at the bottom.
  const box = await page.locator("#notice").boundingBox();
  assert.ok(box && box.y >= 0 && box.y + box.height <= page.viewportSize().height, JSON.stringify(box));
  await page.screenshot({ path: join(ARTIFACTS, "student-busy.png") });
  const stored = await page.evaluate(() => JSON.parse(localStorage.getItem("exam-submission:demo:p-offline")));
  assert.ok(stored.key && !stored.receipt);
  await context.setOffline(false);
  await receiptShown(page);
  assert.ok(keys.length >= 1);
  assert.deepEqual([...new Set(keys)], [stored.key]);
  const rows = await server.settledRows("p-offline");
  assert.equal(rows.length, 1);
  await context.close();
});

test("the server answers 503 for a while: the page says busy, then shows the receipt", async () => {
  const { context, page } = await studentPage("p-503");
  let refused = 0;
  await page.route("**/v1/exams/demo/submissions", async (route) => {
    if (route.request().method() === "POST" && refused < 2) {
      ++refused;
      return route.fulfill({
        status: 503,
        headers: { "Retry-After": "1", "Content-Type": "application/json" },
        body: '{"error":"overloaded","message":"queue full"}',
      });
    }
    return route.continue();
  });
  await answer(page);
  await page.click("#submit");
  await page.locator("#notice.busy").waitFor({ timeout: 10000 });
  assert.doesNotMatch(await page.textContent("body"), /failed|unknown/i);
  await receiptShown(page);
  assert.equal(refused, 2);
  assert.equal((await server.settledRows("p-503")).length, 1);
  await context.close();
});

test("the server killed after the durable accept, before the answer: a reload shows the original receipt", async () => {
  const { context, page } = await studentPage("p-kill");
  let original = null;
  await page.route("**/v1/exams/demo/submissions", async (route) => {
    if (route.request().method() !== "POST" || original) return route.continue();
    const res = await route.fetch(); // the server stores it and answers...
    original = await res.json();
    await server.kill(); // ...and dies before the answer reaches the page
    return route.abort("connectionreset");
  });
  await answer(page);
  await page.click("#submit");
  await page.locator("#notice.busy").waitFor({ timeout: 10000 });
  assert.ok(original?.receipt_id);
  await server.start(); // same port, same data
  await page.reload();
  await receiptShown(page);
  assert.equal(await page.textContent("#receipt-id"), original.receipt_id);
  assert.match(await page.textContent("#accepted-at"), new RegExp(original.accepted_at.replace(/[.]/g, "\\.")));
  const rows = await server.settledRows("p-kill");
  assert.deepEqual(
    rows.map((r) => r.receipt_id),
    [original.receipt_id],
  );
  await context.close();
});

test("no graders running: received; a worker started later drains it, and the page, following events, shows graded", async () => {
  const idle = await new ExamServer({ args: ["--workers", "0", "--events-interval", "0.2"] }).start();
  const context = await browser.newContext({ viewport: { width: 1000, height: 700 } });
  try {
    const page = await context.newPage();
    const reads = { polls: 0, streams: 0 };
    page.on("request", (r) => {
      if (!/\/v1\/submissions\//.test(r.url())) return;
      if (r.url().endsWith("/events")) reads.streams++;
      else reads.polls++;
    });
    await page.goto(`${idle.url}/#exam=demo&token=${idle.token("p-later")}`);
    await page.locator("#answers").waitFor({ state: "visible" });
    await answer(page, "BDACBADCCA");
    await page.click("#submit");
    await receiptShown(page);
    assert.equal(await page.textContent("#status"), "Received: waiting to be graded");
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await page.textContent("#status"), "Received: waiting to be graded");
    assert.equal(await idle.backlog(), 1);
    await page.screenshot({ path: join(ARTIFACTS, "student-receipt.png") });
    const worker = idle.startWorker();
    await page.locator("#status.graded").waitFor({ timeout: 30000 });
    assert.equal(await page.textContent("#status"), "Graded: score 100%");
    // Followed by server-sent events: one stream, no polls.
    assert.deepEqual(reads, { polls: 0, streams: 1 });
    const gone = new Promise((r) => worker.once("exit", r));
    worker.kill("SIGTERM");
    await gone;
    const rows = await idle.settledRows("p-later");
    assert.deepEqual(
      rows.map((r) => r.receipt_id),
      [await page.textContent("#receipt-id")],
    );
  } finally {
    await context.close();
    await idle.stop();
  }
});

test("phone-sized, by keyboard alone, with a strict CSP and no inline script", async () => {
  const { context, page, problems } = await studentPage("p-keys", { viewport: { width: 375, height: 740 } });
  const res = await page.request.get(`${server.url}/`);
  const csp = res.headers()["content-security-policy"];
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);
  assert.equal(await page.locator("script:not([src])").count(), 0);
  assert.equal(await page.locator("[style]").count(), 0);
  // Nothing wider than the screen.
  assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth));
  await page.focus('input[name="q1"][value="A"]');
  await page.keyboard.press("ArrowRight"); // q1 = B
  for (let i = 0; i < 10; ++i) await page.keyboard.press("Tab");
  assert.equal(await page.evaluate(() => document.activeElement.id), "submit");
  await page.keyboard.press("Enter");
  await receiptShown(page);
  // The receipt's heading takes the focus, so a screen reader reads it out.
  assert.equal(await page.evaluate(() => document.activeElement.id), "receipt-title");
  await page.screenshot({ path: join(ARTIFACTS, "student-phone.png"), fullPage: true });
  const rows = await server.settledRows("p-keys");
  assert.equal(rows.length, 1);
  assert.equal(rows[0].score, 10);
  assert.deepEqual(problems, []);
  await context.close();
});

test("the same page against direct_server: the receipt, graded at once; a double click stores one row", async () => {
  const bin = process.env.DIRECT_SERVER;
  assert.ok(bin, "DIRECT_SERVER must name the direct_server binary");
  const direct = await new ExamServer({ bin }).start();
  try {
    const { context, page, problems } = await studentPage("p-direct", { on: direct });
    await answer(page, "BDACBADCCA");
    await page.dblclick("#submit");
    await receiptShown(page);
    // The 201 says graded at once; the score comes with the first status read.
    await page.locator("#status.graded", { hasText: "Graded: score 100%" }).waitFor({ timeout: 20000 });
    const rows = await direct.settledRows("p-direct");
    assert.deepEqual(
      rows.map((r) => [r.receipt_id, r.score]),
      [[await page.textContent("#receipt-id"), 100]],
    );
    await page.reload();
    await receiptShown(page);
    assert.equal(await page.textContent("#receipt-id"), rows[0].receipt_id);
    assert.deepEqual(problems, []);
    await context.close();
  } finally {
    await direct.stop();
  }
});
