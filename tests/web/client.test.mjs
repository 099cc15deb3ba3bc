// ingest-submit.js against a real exam_server (Node's test runner). Failures are
// injected around the real server: a fetch that throws before or after the request
// went out, a proxy that answers 503/409/429 for a while, a tab that "crashes".
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { ExamServer } from "./server.mjs";
import {
  createSubmitter,
  followStatus,
  backoffMs,
  retryAfterMs,
  SubmitError,
} from "../../examples/exam/web/ingest-submit.js";

class MemoryStorage {
  constructor() {
    this.map = new Map();
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}

let server;
before(async () => {
  server = await new ExamServer().start();
});
after(async () => {
  await server?.stop();
});

// A submitter for `student` on the demo exam; sleeps are recorded and shortened.
function submitterFor(student, extra = {}) {
  const token = server.token(student);
  const waits = [];
  const busy = [];
  const s = createSubmitter({
    url: `${extra.base ?? server.url}/v1/exams/demo/submissions`,
    storageKey: `exam:demo:${student}`,
    storage: extra.storage ?? new MemoryStorage(),
    headers: () => ({ Authorization: `Bearer ${extra.token ?? token}` }),
    sleep: (ms) => {
      waits.push(ms);
      return new Promise((r) => setTimeout(r, 5));
    },
    onBusy: (b) => busy.push(b),
    ...extra,
  });
  return { s, waits, busy, token };
}

const answers = { answers: { q1: "B", q2: "D", q3: "A" } };

test("a submission gets its receipt, the key stored before the request, and follows to graded", async () => {
  const storage = new MemoryStorage();
  const sent = [];
  const { s, token } = submitterFor("c-plain", {
    storage,
    fetch: (url, init) => {
      const stored = JSON.parse(storage.getItem("exam:demo:c-plain"));
      sent.push({ key: init.headers["Idempotency-Key"], storedKey: stored?.key, storedBody: stored?.body });
      return fetch(url, init);
    },
  });
  const first = s.submit(answers);
  const second = s.submit({ answers: { q1: "C" } }); // a double click joins the first
  const [r1, r2] = await Promise.all([first, second]);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].storedKey, sent[0].key);
  assert.equal(sent[0].storedBody, JSON.stringify(answers));
  assert.deepEqual(r1, r2);
  assert.equal(r1.status, "received");
  assert.match(r1.accepted_at, /^\d{4}-\d\d-\d\dT/);
  assert.deepEqual(s.receipt(), r1);
  assert.equal(s.pending(), false);
  const seen = [];
  const final = await followStatus(`${server.url}/v1/submissions/${r1.receipt_id}`, {
    headers: { Authorization: `Bearer ${token}` },
    onStatus: (st) => seen.push(st.status),
    intervalMs: 50,
  });
  assert.equal(final.status, "graded");
  assert.equal(final.score, 30);
  assert.equal(seen.at(-1), "graded");
  const rows = await server.settledRows("c-plain");
  assert.equal(rows.length, 1);
  assert.equal(rows[0].receipt_id, r1.receipt_id);
});

test("network errors before the request are retried with the same key: one row", async () => {
  const keys = [];
  let calls = 0;
  const { s, busy } = submitterFor("c-net", {
    fetch: (url, init) => {
      keys.push(init.headers["Idempotency-Key"]);
      if (++calls <= 2) return Promise.reject(new TypeError("fetch failed"));
      return fetch(url, init);
    },
  });
  const r = await s.submit(answers);
  assert.equal(keys.length, 3);
  assert.equal(new Set(keys).size, 1);
  assert.deepEqual(
    busy.map((b) => b.code),
    ["network", "network"],
  );
  const rows = await server.settledRows("c-net");
  assert.deepEqual(
    rows.map((x) => x.receipt_id),
    [r.receipt_id],
  );
});

test("an answer lost after the server accepted: the retry gets the original receipt", async () => {
  let original = null;
  let calls = 0;
  const { s } = submitterFor("c-lost", {
    fetch: async (url, init) => {
      const res = await fetch(url, init);
      if (++calls === 1) {
        original = await res.json();
        throw new TypeError("connection reset"); // the receipt never reaches the page
      }
      return res;
    },
  });
  const r = await s.submit(answers);
  assert.equal(calls, 2);
  assert.equal(r.receipt_id, original.receipt_id);
  assert.equal(r.accepted_at, original.accepted_at);
  const rows = await server.settledRows("c-lost");
  assert.equal(rows.length, 1);
});

test("a tab that died mid-request: a new page resumes the stored attempt with its key", async () => {
  const storage = new MemoryStorage();
  const dying = new AbortController();
  const first = submitterFor("c-crash", {
    storage,
    fetch: (url, init) => {
      // The request reaches the server, the tab dies before the answer.
      return fetch(url, init).then(() => new Promise(() => {}));
    },
  });
  first.s.submit(answers, { signal: dying.signal }).catch(() => {});
  const key = JSON.parse(storage.getItem("exam:demo:c-crash")).key;
  await server.settledRows("c-crash");
  const second = submitterFor("c-crash", { storage });
  assert.equal(second.s.pending(), true);
  const sentKeys = [];
  const resumed = createSubmitter({
    url: `${server.url}/v1/exams/demo/submissions`,
    storageKey: "exam:demo:c-crash",
    storage,
    headers: () => ({ Authorization: `Bearer ${second.token}` }),
    fetch: (url, init) => {
      sentKeys.push(init.headers["Idempotency-Key"]);
      return fetch(url, init);
    },
  });
  const r = await resumed.resume();
  assert.deepEqual(sentKeys, [key]);
  assert.equal(resumed.pending(), false);
  const rows = await server.settledRows("c-crash");
  assert.deepEqual(
    rows.map((x) => x.receipt_id),
    [r.receipt_id],
  );
  // Submitting other answers after that is a new attempt with a new key.
  const again = await resumed.submit({ answers: { q1: "A" } });
  assert.notEqual(again.receipt_id, r.receipt_id);
  assert.equal(sentKeys.length, 2);
  assert.notEqual(sentKeys[1], key);
});

// A proxy in front of the server that answers the first `refusals` POSTs itself.
async function refusingProxy(refusals) {
  let left = [...refusals];
  const proxy = http.createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", async () => {
      if (req.method === "POST" && left.length) {
        const [status, headers, code] = left.shift();
        res.writeHead(status, { "Content-Type": "application/json", ...headers });
        return res.end(JSON.stringify({ error: code, message: "try again" }));
      }
      const up = await fetch(server.url + req.url, {
        method: req.method,
        headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => !["host", "connection", "content-length", "keep-alive", "transfer-encoding"].includes(k))),
        body: req.method === "POST" ? Buffer.concat(chunks) : undefined,
      });
      res.writeHead(up.status, { "Content-Type": up.headers.get("content-type") ?? "application/json" });
      res.end(Buffer.from(await up.arrayBuffer()));
    });
  });
  await new Promise((r) => proxy.listen(0, "127.0.0.1", r));
  return { base: `http://127.0.0.1:${proxy.address().port}`, close: () => proxy.close() };
}

test("503, 429 and 409 are waited out (Retry-After honoured), then the receipt", async () => {
  const proxy = await refusingProxy([
    [503, { "Retry-After": "3" }, "overloaded"],
    [429, { "Retry-After": "2" }, "rate_limited"],
    [409, {}, "in_flight"],
    [502, {}, "bad_gateway"],
  ]);
  try {
    const { s, waits, busy } = submitterFor("c-busy", { base: proxy.base });
    const r = await s.submit(answers);
    assert.deepEqual(
      busy.map((b) => b.status),
      [503, 429, 409, 502],
    );
    assert.deepEqual(
      busy.map((b) => b.code),
      ["overloaded", "rate_limited", "in_flight", "bad_gateway"],
    );
    assert.ok(waits[0] >= 3000 && waits[0] <= 3600, `waited ${waits[0]} ms after Retry-After: 3`);
    assert.ok(waits[1] >= 2000 && waits[1] <= 2400, `waited ${waits[1]} ms after Retry-After: 2`);
    assert.ok(waits[2] >= 1000 && waits[2] <= 2000, `third backoff ${waits[2]} ms`);
    const rows = await server.settledRows("c-busy");
    assert.deepEqual(
      rows.map((x) => x.receipt_id),
      [r.receipt_id],
    );
  } finally {
    proxy.close();
  }
});

test("final refusals throw and drop the attempt (kept after a 401)", async () => {
  // 400: a question the exam does not have.
  const bad = submitterFor("c-400");
  await assert.rejects(bad.s.submit({ answers: { nope: "A" } }), (e) => {
    assert.ok(e instanceof SubmitError);
    assert.equal(e.status, 400);
    assert.equal(e.code, "invalid_body");
    return true;
  });
  assert.equal(bad.s.stored(), null);

  // 422: the key already used with another body.
  const storage = new MemoryStorage();
  const first = submitterFor("c-422", { storage });
  await first.s.submit(answers);
  const record = JSON.parse(storage.getItem("exam:demo:c-422"));
  storage.setItem("exam:demo:c-422", JSON.stringify({ ...record, receipt: undefined, body: '{"answers":{"q1":"C"}}' }));
  await assert.rejects(first.s.resume(), (e) => e.status === 422 && e.code === "idempotency_key_reused");
  assert.equal(first.s.stored(), null);

  // 401: a token the server refuses; the attempt stays for a new token.
  const storage401 = new MemoryStorage();
  const refused = submitterFor("c-401", { storage: storage401, token: "not-a-token" });
  await assert.rejects(refused.s.submit(answers), (e) => e.status === 401 && e.code === "unauthorized");
  assert.equal(refused.s.pending(), true);
  const renewed = submitterFor("c-401", { storage: storage401 });
  const r = await renewed.s.resume();
  assert.equal(r.status, "received");
  assert.equal((await server.settledRows("c-401")).length, 1);
});

test("backoff doubles with jitter up to its cap; Retry-After in seconds or as a date", () => {
  assert.equal(backoffMs(1, { baseMs: 500, maxMs: 15000 }, () => 0), 250);
  assert.equal(backoffMs(1, { baseMs: 500, maxMs: 15000 }, () => 1), 500);
  assert.equal(backoffMs(3, { baseMs: 500, maxMs: 15000 }, () => 1), 2000);
  assert.equal(backoffMs(40, { baseMs: 500, maxMs: 15000 }, () => 1), 15000);
  assert.equal(retryAfterMs("7"), 7000);
  assert.equal(retryAfterMs(""), 0);
  assert.equal(retryAfterMs("soon"), 0);
  const now = Date.parse("2026-12-03T10:00:00Z");
  assert.equal(retryAfterMs("Thu, 03 Dec 2026 10:00:05 GMT", now), 5000);
  assert.equal(retryAfterMs("Thu, 03 Dec 2026 09:00:00 GMT", now), 0);
});

test("following a receipt that is not the caller's stops with a 404-free error only on 401/403", async () => {
  const { s } = submitterFor("c-follow");
  const r = await s.submit(answers);
  await assert.rejects(
    followStatus(`${server.url}/v1/submissions/${r.receipt_id}`, {
      headers: { Authorization: "Bearer nope" },
      intervalMs: 10,
    }),
    (e) => e instanceof SubmitError && e.status === 401,
  );
  // Another student's receipt answers 404: waited out, never shown; abort ends it.
  const stop = new AbortController();
  const polls = [];
  const following = followStatus(`${server.url}/v1/submissions/${r.receipt_id}`, {
    headers: { Authorization: `Bearer ${server.token("c-other")}` },
    intervalMs: 10,
    signal: stop.signal,
    onStatus: (st) => polls.push(st),
  });
  setTimeout(() => stop.abort(new Error("stopped")), 300);
  await assert.rejects(following, /stopped/);
  assert.deepEqual(polls, []);
});

test("status by server-sent events, with no polls; a stream refused (503) falls back to polling", async () => {
  const idle = await new ExamServer({ args: ["--workers", "0", "--events-interval", "0.1", "--max-streams", "1"] }).start();
  try {
    const token = idle.token("c-events");
    const headers = { Authorization: `Bearer ${token}` };
    const submit = (key, body) =>
      fetch(`${idle.url}/v1/exams/demo/submissions`, {
        method: "POST",
        headers: { ...headers, "Content-Type": "application/json", "Idempotency-Key": key },
        body: JSON.stringify(body),
      }).then((r) => r.json());
    const a = await submit("ev-a", answers);
    const b = await submit("ev-b", { answers: { q1: "B" } });
    const follower = (receipt) => {
      const log = { modes: [], statuses: [], polls: 0 };
      log.done = followStatus(`${idle.url}/v1/submissions/${receipt.receipt_id}`, {
        headers,
        intervalMs: 50,
        onMode: (m) => log.modes.push(m),
        onStatus: (s) => log.statuses.push(s.status),
        fetch: (u, init) => {
          if (!u.endsWith("/events")) log.polls++;
          return fetch(u, init);
        },
      });
      return log;
    };
    const first = follower(a);
    while (!first.modes.length) await new Promise((r) => setTimeout(r, 20));
    const second = follower(b); // the one stream allowed is taken: 503, so it polls
    while (second.statuses.length < 1 || first.statuses.length < 1) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(first.modes, ["events"]);
    assert.deepEqual(second.modes, ["polling"]);
    assert.deepEqual(first.statuses, ["received"]);
    const worker = idle.startWorker();
    const [fa, fb] = await Promise.all([first.done, second.done]);
    const gone = new Promise((r) => worker.once("exit", r));
    worker.kill("SIGTERM");
    await gone;
    assert.equal(fa.status, "graded");
    assert.equal(fa.score, 30);
    assert.equal(fb.status, "graded");
    // "processing" shows when a read falls while the worker holds the batch.
    assert.deepEqual(
      first.statuses.filter((st) => st !== "processing"),
      ["received", "graded"],
    );
    assert.ok(first.statuses.length <= 3, first.statuses.join());
    assert.equal(first.polls, 0);
    assert.ok(second.polls >= 2, `second polled ${second.polls} times`);
  } finally {
    await idle.stop();
  }
});
