// Files with a submission, in Debian's headless Chromium against a real exam_server and
// the fauxqs emulator's S3 side: the page hashes the file, gets a presigned URL, PUTs the
// file straight to the storage with progress, then submits naming it; the graders check
// it before grading. fauxqs runs with --cors (the part a bucket's CORS rule plays on S3).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { ExamServer } from "./server.mjs";
import { ARTIFACTS, freshPage, launchBrowser } from "./browser.mjs";

const FAUXQS = join(import.meta.dirname, "..", "sqs", "fauxqs.mjs");

// The emulator on `port` (0: a free one); resolves with the child and its port.
function startStorage(port = 0) {
  const child = spawn(process.execPath, [FAUXQS, "--port", String(port), "--cors", "--bucket", "exam-files"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  process.on("exit", () => child.kill("SIGKILL"));
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve({ child, port: Number(m[1]) });
    });
    child.on("exit", (code) => reject(new Error(`fauxqs exited (${code})`)));
  });
}

async function stopStorage(s) {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const gone = new Promise((r) => s.child.once("exit", r));
  s.child.kill("SIGKILL");
  await gone;
}

let storage;
let server;
let browser;
before(async () => {
  storage = await startStorage();
  server = await new ExamServer({ args: ["--storage", `s3+http://127.0.0.1:${storage.port}/exam-files`] }).start();
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await server?.stop();
  await stopStorage(storage);
});

// The keys the bucket holds under `prefix` (ListObjectsV2).
async function keys(prefix) {
  const res = await fetch(`http://127.0.0.1:${storage.port}/exam-files?list-type=2&prefix=${encodeURIComponent(prefix)}`);
  return [...(await res.text()).matchAll(/<Key>([^<]+)<\/Key>/g)].map((m) => m[1]);
}

async function studentPage(student) {
  const opened = await freshPage(browser);
  await opened.page.goto(`${server.url}/#exam=demo&token=${server.token(student)}`);
  await opened.page.locator("#answers").waitFor({ state: "visible" });
  return opened;
}

const essay = (text) => ({ name: "essay.txt", mimeType: "text/plain", buffer: Buffer.from(text) });

test("a file goes straight to the storage with progress, the submission names it, graded after the check", async () => {
  const { context, page, problems } = await studentPage("f-plain");
  assert.equal(await page.isVisible("#files"), true);
  assert.match(await page.textContent("#file-limits"), /Up to 3 files/);
  const text = "My essay. ".repeat(20000); // 200 kB: progress events on the way
  await page.setInputFiles("#file-input", essay(text));
  await page.check('input[name="q1"][value="B"]');
  await page.screenshot({ path: join(ARTIFACTS, "student-attachment-form.png"), fullPage: true });
  const puts = [];
  page.on("request", (r) => {
    if (r.method() === "PUT") puts.push(r.url());
  });
  // Every text the notice shows on the way (the upload's progress among them).
  await page.evaluate(() => {
    window.noticeTexts = [];
    const el = document.getElementById("notice");
    new MutationObserver(() => window.noticeTexts.push(el.textContent)).observe(el, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  });
  await page.click("#submit");
  await page.locator("#receipt").waitFor({ state: "visible", timeout: 20000 });
  await page.locator("#status.graded").waitFor({ timeout: 20000 });
  await page.screenshot({ path: join(ARTIFACTS, "student-attachment.png"), fullPage: true });
  assert.equal(puts.length, 1);
  const progress = (await page.evaluate(() => window.noticeTexts)).filter((t) => /^Uploading essay\.txt: \d+ %$/.test(t));
  assert.ok(progress.length >= 1, "no upload progress was shown");
  assert.ok(puts[0].startsWith(`http://127.0.0.1:${storage.port}/exam-files/exams/demo/f-plain/`));
  // Audit: one object, the student's bytes; one graded row.
  const stored = await keys("exams/demo/f-plain/");
  assert.equal(stored.length, 1);
  const body = await (await fetch(`http://127.0.0.1:${storage.port}/exam-files/${stored[0]}`)).text();
  assert.equal(body, text);
  const rows = await server.settledRows("f-plain");
  assert.equal(rows.length, 1);
  assert.equal(rows[0].receipt_id, await page.textContent("#receipt-id"));
  assert.deepEqual(problems, []);
  await context.close();

  // The graded row names the file; the teacher's list offers it, and its button goes to
  // a short-lived download URL (fauxqs ignores response-content-disposition, so the
  // text opens in the tab instead of being saved).
  assert.deepEqual(rows[0].attachments.map((a) => a.key), stored);
  const teacher = await freshPage(browser);
  await teacher.page.goto(`${server.url}/teacher#exam=demo&token=${server.token("teacher-1", "teacher")}`);
  const file = teacher.page.locator(`#list tr[data-receipt="${rows[0].receipt_id}"] button.file`);
  await file.waitFor({ timeout: 20000 });
  assert.equal(await file.textContent(), "essay.txt");
  await teacher.page.screenshot({ path: join(ARTIFACTS, "teacher-attachment.png"), fullPage: true });
  assert.deepEqual(teacher.problems, []); // (on the storage's origin the browser then asks for a favicon it lacks)
  await file.click();
  const at = `http://127.0.0.1:${storage.port}/exam-files/${stored[0]}?`;
  await teacher.page.waitForURL((u) => u.href.startsWith(at), { timeout: 20000 });
  assert.match(teacher.page.url(), /X-Amz-Signature=[0-9a-f]{64}/);
  assert.match(teacher.page.url(), /response-content-disposition=attachment%3B%20filename%3D%22essay\.txt%22/);
  assert.equal(await teacher.page.textContent("body"), text);
  await teacher.context.close();
});

test("a refused submission sent again reuses the uploaded file", async () => {
  const { context, page } = await studentPage("f-again");
  await page.setInputFiles("#file-input", essay("reused"));
  let refuse = true;
  await page.route("**/v1/exams/demo/submissions", (route) => {
    if (!refuse) return route.continue();
    refuse = false;
    return route.fulfill({
      status: 400,
      contentType: "application/json",
      body: JSON.stringify({ error: "invalid_body", message: "refused once for the test" }),
    });
  });
  let puts = 0;
  page.on("request", (r) => {
    if (r.method() === "PUT") puts++;
  });
  await page.click("#submit");
  await page.locator("#notice", { hasText: "refused once" }).waitFor({ timeout: 20000 });
  await page.click("#submit");
  await page.locator("#receipt").waitFor({ state: "visible", timeout: 20000 });
  assert.equal(puts, 1);
  assert.equal((await keys("exams/demo/f-again/")).length, 1);
  assert.equal((await server.settledRows("f-again")).length, 1);
  await context.close();
});

test("the storage down while uploading: the page says so, waits, and sends the file when it is back", async () => {
  const { context, page } = await studentPage("f-down");
  await page.setInputFiles("#file-input", essay("sent when the storage is back"));
  await stopStorage(storage);
  await page.click("#submit");
  await page.locator("#notice.busy", { hasText: "file storage is not answering" }).waitFor({ timeout: 20000 });
  storage = await startStorage(storage.port); // empty again, the bucket made at start
  await page.locator("#receipt").waitFor({ state: "visible", timeout: 60000 });
  await page.locator("#status.graded").waitFor({ timeout: 30000 });
  const stored = await keys("exams/demo/f-down/");
  assert.equal(stored.length, 1);
  assert.equal((await server.settledRows("f-down")).length, 1);
  await context.close();
});
