// A real exam_server for the web tests: on a free loopback port, in a temporary data
// directory, with a known JWT secret; stopped (SIGKILL if need be) when the test
// process exits. EXAM_SERVER names the binary (CTest passes it).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const children = new Set();
function killAll() {
  for (const c of children) c.kill("SIGKILL");
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"])
  process.on(sig, () => {
    killAll();
    process.exit(1);
  });

export function serverBinary() {
  const bin = process.env.EXAM_SERVER;
  if (!bin || !existsSync(bin)) throw new Error("EXAM_SERVER must name the exam_server binary");
  return bin;
}

export class ExamServer {
  // args: more options, or a function of the data directory that returns them.
  // bin: another server binary with the same command line (direct_server).
  constructor({ args = [], secret = "web-test-secret-0123456789abcdef", bin = serverBinary() } = {}) {
    this.bin = bin;
    this.secret = secret;
    this.args = args;
    this.dir = mkdtempSync(join(tmpdir(), "ingest-web-"));
    this.port = 0;
    this.child = null;
    this.output = "";
  }

  get url() {
    return `http://127.0.0.1:${this.port}`;
  }

  // Starts (or starts again, on the same port and data) and waits for the banner.
  async start() {
    const child = spawn(
      this.bin,
      [
        "--listen",
        `127.0.0.1:${this.port}`,
        "--data",
        this.dir,
        "--jwt-secret",
        this.secret,
        ...(typeof this.args === "function" ? this.args(this.dir) : this.args),
      ],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    this.child = child;
    children.add(child);
    child.on("exit", () => children.delete(child));
    child.stderr.on("data", (d) => (this.output += d));
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`exam_server did not start:\n${this.output}`)), 20000);
      child.stdout.on("data", (d) => {
        this.output += d;
        const m = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(this.output);
        if (m) {
          this.port = Number(m[1]);
          clearTimeout(timer);
          resolve();
        }
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`exam_server exited (${code}):\n${this.output}`));
      });
    });
    return this;
  }

  // The banner line that starts with `prefix`.
  bannerLine(prefix) {
    return this.output.split("\n").find((l) => l.startsWith(prefix));
  }

  async kill() {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const gone = new Promise((r) => c.once("exit", r));
    c.kill("SIGKILL");
    await gone;
  }

  async stop() {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const gone = new Promise((r) => c.once("exit", r));
      c.kill("SIGTERM");
      const timer = setTimeout(() => c.kill("SIGKILL"), 15000);
      await gone;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  // exam_worker on this server's data (its embedded queue and exam.db); returns the
  // child (stop it with SIGTERM).
  startWorker(args = []) {
    const bin = process.env.EXAM_WORKER;
    if (!bin || !existsSync(bin)) throw new Error("EXAM_WORKER must name the exam_worker binary");
    const child = spawn(bin, ["--data", this.dir, ...args], { stdio: ["ignore", "ignore", "pipe"] });
    children.add(child);
    child.on("exit", () => children.delete(child));
    child.stderr.on("data", (d) => (this.output += d));
    return child;
  }

  token(sub, role = "student") {
    return execFileSync(serverBinary(), ["token", "--sub", sub, "--role", role, "--jwt-secret", this.secret], {
      encoding: "utf8",
    }).trim();
  }

  // Every submission of `exam` the database holds, read as a teacher.
  async rows(exam = "demo") {
    const auth = { Authorization: `Bearer ${this.token("teacher-1", "teacher")}` };
    const items = [];
    let after = "";
    for (;;) {
      const res = await fetch(`${this.url}/v1/exams/${exam}/submissions?limit=1000&after=${encodeURIComponent(after)}`, {
        headers: auth,
      });
      if (!res.ok) throw new Error(`list: HTTP ${res.status}`);
      const page = await res.json();
      items.push(...page.items);
      if (!page.next_after) return items;
      after = page.next_after;
    }
  }

  // GET path as a teacher; the JSON answer.
  async asTeacher(path) {
    const res = await fetch(`${this.url}${path}`, {
      headers: { Authorization: `Bearer ${this.token("teacher-1", "teacher")}` },
    });
    if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
    return res.json();
  }

  // The queue's backlog (exam_backlog in /metrics).
  async backlog() {
    const text = await (await fetch(`${this.url}/metrics`)).text();
    const m = /^exam_backlog (\d+)$/m.exec(text);
    if (!m && this.bin !== serverBinary()) return 0; // direct_server: written as accepted, no queue
    if (!m) throw new Error("no exam_backlog in /metrics");
    return Number(m[1]);
  }

  // `student`'s rows of `exam` once the queue is empty and at least `atLeast` are there
  // (a duplicate would be a row too: it is counted, not waited away).
  async settledRows(student, { exam = "demo", atLeast = 1, timeoutMs = 20000 } = {}) {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const backlog = await this.backlog();
      const mine = (await this.rows(exam)).filter((r) => r.student_id === student);
      if (backlog === 0 && mine.length >= atLeast && mine.every((r) => r.status === "graded")) return mine;
      if (Date.now() > until) throw new Error(`rows of ${student} (backlog ${backlog}): ${JSON.stringify(mine)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  // Waits until `student`'s rows of `exam` satisfy `ok(rows)`; returns them.
  async waitRows(student, ok, { exam = "demo", timeoutMs = 20000 } = {}) {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const mine = (await this.rows(exam)).filter((r) => r.student_id === student);
      if (ok(mine)) return mine;
      if (Date.now() > until) throw new Error(`rows of ${student}: ${JSON.stringify(mine)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
