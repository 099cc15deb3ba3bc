// The teacher page in Debian's headless Chromium against a real exam_server: a dead
// letter shown with its reason, attempts and times, replayed from the page and then
// graded (checked in the database, and the replay in the server's log); a flood seen
// as it is drained, the chart's two lines read back from the same overview the page
// draws. Screenshots go to $WEB_ARTIFACTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ExamServer } from "./server.mjs";
import { ARTIFACTS, freshPage, launchBrowser } from "./browser.mjs";

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

async function submit(server, token, key, answers = { q1: "B", q2: "D" }) {
  const res = await fetch(`${server.url}/v1/exams/demo/submissions`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json", "Idempotency-Key": key },
    body: JSON.stringify({ answers }),
  });
  if (res.status !== 202) throw new Error(`submit ${key}: HTTP ${res.status} ${await res.text()}`);
  return res.json();
}

async function until(what, ok, timeoutMs = 30000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await what();
    if (ok(v)) return v;
    if (Date.now() > end) throw new Error(`gave up waiting: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await gone;
}

async function teacherPage(server) {
  const opened = await freshPage(browser, { width: 1240, height: 1000 });
  await opened.page.goto(`${server.url}/teacher#exam=demo&token=${server.token("teacher-1", "teacher")}`);
  await opened.page.locator("#count-graded").waitFor();
  return opened;
}

test("a dead letter: shown with reason, attempts and times; Replay puts it back, it is graded, the log says who", async () => {
  const server = await new ExamServer({ args: ["--workers", "0"] }).start();
  try {
    const { receipt_id: id } = await submit(server, server.token("t-dead"), "dead-1");
    // Graders that do not know the exam park it at once.
    const other = join(server.dir, "other-exams.json");
    writeFileSync(other, JSON.stringify({ exams: [{ id: "elsewhere", answer_key: { q1: "A" },
      opens_at: "2020-01-01T00:00:00Z", deadline: "2099-01-01T00:00:00Z", students: "any" }] }));
    const lost = server.startWorker(["--exams", other]);
    await until(() => server.asTeacher("/v1/exams/demo/dead-letters"), (p) => p.items.length === 1);
    await stopChild(lost);

    const { context, page, problems } = await teacherPage(server);
    const row = page.locator(`#dead tr[data-receipt="${id}"]`);
    await row.waitFor({ timeout: 10000 });
    const text = await row.textContent();
    assert.match(text, /t-dead/);
    assert.match(text, /permanent_failure: unknown exam 'demo'/);
    assert.match(await row.locator("td").nth(4).textContent(), /^1$/);
    assert.match(await row.locator("td").nth(6).textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    await page.locator("#count-dead", { hasText: /^1$/ }).waitFor();
    assert.equal(await page.textContent("#count-graded"), "0");
    await page.screenshot({ path: join(ARTIFACTS, "teacher-dead-letter.png"), fullPage: true });

    await row.getByRole("button", { name: `Replay ${id} of t-dead` }).click();
    await page.locator("#notice", { hasText: `Replayed ${id}` }).waitFor();
    await page.locator("#dead-none").waitFor({ state: "visible" });
    await page.locator("#count-received", { hasText: /^1$/ }).waitFor();
    assert.match(server.output, new RegExp(`"event":"dead_letter_replayed".*"receipt_id":"${id}".*by teacher teacher-1`));

    const worker = server.startWorker();
    await page.locator("#count-graded", { hasText: /^1$/ }).waitFor({ timeout: 30000 });
    await page.locator(`#list tr[data-receipt="${id}"]`).waitFor({ timeout: 10000 });
    await stopChild(worker);
    const rows = await server.settledRows("t-dead");
    assert.deepEqual(
      rows.map((r) => r.receipt_id),
      [id],
    );
    assert.deepEqual((await server.asTeacher("/v1/exams/demo/dead-letters")).items, []);
    assert.deepEqual(problems, []);
    await context.close();
  } finally {
    await server.stop();
  }
});

test("a flood drained at the graders' rate: the counts move, the chart shows accepted above written", async () => {
  const rate = 50;
  const total = 500;
  const server = await new ExamServer({ args: ["--rate", String(rate), "--batch", "10", "--student-rate", "0"] }).start();
  try {
    const { context, page, problems } = await teacherPage(server);
    const token = server.token("t-flood");
    let next = 0;
    const sender = async () => {
      while (next < total) await submit(server, token, `flood-${next++}`);
    };
    await Promise.all(Array.from({ length: 25 }, sender));
    // While the graders drain: a backlog on the page.
    await page.locator("#count-backlog", { hasText: /^[1-9]/ }).waitFor({ timeout: 10000 });
    await new Promise((r) => setTimeout(r, 6000));
    await page.screenshot({ path: join(ARTIFACTS, "teacher-flood.png") });
    await page.locator("#count-graded", { hasText: new RegExp(`^${total}$`) }).waitFor({ timeout: 60000 });
    await page.locator("#count-backlog", { hasText: /^0$/ }).waitFor({ timeout: 10000 });
    const o = await until(() => server.asTeacher("/v1/overview"), (v) => v.series.written.reduce((a, b) => a + (b ?? 0), 0) === total);
    const perSecond = (n) => (n * 1000) / o.series.period_ms;
    const accepted = o.series.accepted.filter((v) => v !== null).map(perSecond);
    const written = o.series.written.filter((v) => v !== null).map(perSecond);
    // A period with no queue reading (the probe's first read not in yet, or a read that
    // failed on a loaded machine) is null, and so is the one after it: what was accepted
    // then is not charted. The queue's own count has the total.
    const gaps = o.series.accepted.slice(1).filter((v) => v === null).length;
    const charted = accepted.reduce((a, b) => a + b, 0);
    if (gaps === 0) assert.equal(charted, total, JSON.stringify(o.series));
    else assert.ok(charted <= total, JSON.stringify(o.series));
    assert.equal(o.queue.accepted, total);
    // The flood came in faster than it was written; the writing held near the rate.
    assert.ok(Math.max(...accepted) > 2 * Math.max(...written), JSON.stringify(o.series));
    assert.ok(Math.max(...written) <= 2 * rate, JSON.stringify(o.series));
    assert.equal(await page.locator("#chart polyline.accepted").count() >= 1, true);
    assert.equal(await page.locator("#chart polyline.written").count() >= 1, true);
    assert.equal(o.queue.balanced, true);
    assert.equal((await server.rows()).length, total);
    assert.deepEqual(problems, []);
    await context.close();
  } finally {
    await server.stop();
  }
});
