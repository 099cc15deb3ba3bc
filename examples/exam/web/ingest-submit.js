// ingest-submit.js: submit once, whatever the network does.
//
// A dependency-free ES module for pages that send a submission to an idempotent accept
// endpoint (the exam servers' POST /v1/exams/{id}/submissions, or your own):
//
// - one Idempotency-Key per submission attempt, generated once and stored (with the
//   body) BEFORE the first request, so that a retry, a reload or a crashed tab sends
//   the same attempt again and the server answers with the same receipt;
// - retried with that key on network errors, 408, 409 (the first request is still being
//   stored), 425, 429, 500, 502, 503 and 504, honouring Retry-After, with exponential
//   backoff and jitter, until it has a receipt or the caller aborts;
// - other refusals (400, 401, 403, 404, 413, 415, 422) are final and thrown as a
//   SubmitError; the stored attempt is dropped, except after a 401 (a new token may
//   send it again);
// - followStatus() follows the receipt's status until it is final: server-sent events,
//   polling while the stream cannot be had.
//
//   import { createSubmitter, followStatus } from "./ingest-submit.js";
//   const submitter = createSubmitter({
//     url: "/v1/exams/demo/submissions",
//     storageKey: "submission:demo:student-1",
//     headers: () => ({ Authorization: `Bearer ${token}` }),
//     onBusy: ({ waitMs }) => show(`busy, trying again in ${Math.ceil(waitMs / 1000)} s`),
//   });
//   const receipt = await submitter.submit({ answers: { q1: "B" } });
//   await followStatus(`/v1/submissions/${receipt.receipt_id}`, { headers, onStatus: show });

/** A refusal that retrying cannot change. */
export class SubmitError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.name = "SubmitError";
    this.status = status;
    this.code = code;
  }
}

const RETRYABLE = new Set([408, 409, 425, 429, 500, 502, 503, 504]);

/** The delay before try number `attempt` (1, 2, ...): doubling from baseMs up to maxMs,
 *  half of it random so that clients turned away together do not come back together. */
export function backoffMs(attempt, { baseMs = 500, maxMs = 15000 } = {}, random = Math.random) {
  const d = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return d / 2 + random() * (d / 2);
}

/** Retry-After in milliseconds (delta seconds or an HTTP date), or 0. */
export function retryAfterMs(header, now = Date.now()) {
  if (!header) return 0;
  const s = header.trim();
  if (/^\d+$/.test(s)) return Number(s) * 1000;
  const t = Date.parse(s);
  return Number.isNaN(t) ? 0 : Math.max(0, t - now);
}

function abortable(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(done, ms);
    function done() {
      signal?.removeEventListener("abort", stop);
      resolve();
    }
    function stop() {
      clearTimeout(timer);
      reject(signal.reason);
    }
    signal?.addEventListener("abort", stop, { once: true });
  });
}

async function errorBody(res) {
  try {
    const body = await res.json();
    return { code: body?.error, message: body?.message };
  } catch {
    return {};
  }
}

function resolveHeaders(h) {
  return typeof h === "function" ? h() : { ...(h || {}) };
}

/**
 * A submitter for one endpoint and one stored attempt (storageKey: one per form and
 * user). Options: url, storageKey, storage (default localStorage), headers (object or
 * function), fetch, onBusy({attempt, status, code, waitMs}), onSending({key, attempt}),
 * retry ({baseMs, maxMs, retryAfterCapMs}), random, sleep(ms, signal), newKey().
 */
export function createSubmitter(options) {
  const {
    url,
    storageKey,
    storage = globalThis.localStorage,
    headers,
    fetch: fetchFn = globalThis.fetch.bind(globalThis),
    onBusy = () => {},
    onSending = () => {},
    retry = {},
    random = Math.random,
    sleep = abortable,
    newKey = () => globalThis.crypto.randomUUID(),
  } = options;
  if (!url || !storageKey) throw new TypeError("createSubmitter: url and storageKey are required");
  const retryAfterCap = retry.retryAfterCapMs ?? 60000;
  let inflight = null;

  const load = () => {
    try {
      const v = JSON.parse(storage.getItem(storageKey));
      return v && typeof v.key === "string" && typeof v.body === "string" ? v : null;
    } catch {
      return null;
    }
  };
  const save = (record) => storage.setItem(storageKey, JSON.stringify(record));

  async function send(record, signal) {
    for (let attempt = 1; ; attempt++) {
      onSending({ key: record.key, attempt });
      let res;
      try {
        res = await fetchFn(record.url, {
          method: "POST",
          headers: { ...resolveHeaders(headers), "Content-Type": "application/json", "Idempotency-Key": record.key },
          body: record.body,
          signal,
        });
      } catch (e) {
        if (signal?.aborted) throw e;
        const waitMs = backoffMs(attempt, retry, random);
        onBusy({ attempt, status: 0, code: "network", waitMs });
        await sleep(waitMs, signal);
        continue;
      }
      if (res.ok) {
        let receipt = null;
        try {
          receipt = await res.json();
        } catch {
          /* a 2xx without a receipt: asked again below */
        }
        if (receipt && typeof receipt.receipt_id === "string") {
          save({ ...record, receipt });
          return receipt;
        }
      } else if (!RETRYABLE.has(res.status)) {
        const { code, message } = await errorBody(res);
        if (res.status !== 401) storage.removeItem(storageKey);
        throw new SubmitError(res.status, code, message);
      }
      const { code } = res.ok ? { code: "no_receipt" } : await errorBody(res);
      const asked = Math.min(retryAfterCap, retryAfterMs(res.headers.get("Retry-After")));
      const waitMs = Math.max(asked + random() * Math.min(asked, 5000) * 0.2, backoffMs(attempt, retry, random));
      onBusy({ attempt, status: res.status, code, waitMs });
      await sleep(waitMs, signal);
    }
  }

  return {
    /** The stored attempt, {key, body, url, started_at, receipt?}, or null. */
    stored: load,
    /** The receipt of the stored attempt, or null. */
    receipt: () => load()?.receipt ?? null,
    /** True when an attempt is stored without its receipt (resume() sends it). */
    pending: () => {
      const r = load();
      return Boolean(r && !r.receipt);
    },
    /** Sends the stored attempt again (after a reload), or resolves null if there is none. */
    resume({ signal } = {}) {
      if (inflight) return inflight;
      const r = load();
      if (!r) return Promise.resolve(null);
      if (r.receipt) return Promise.resolve(r.receipt);
      return track(send(r, signal));
    },
    /**
     * Submits `body` (an object, sent as JSON) as a new attempt, or joins the attempt
     * in progress (a double click sends one submission). An attempt stored without a
     * receipt is sent first, with its own key and body.
     */
    async submit(body, { signal } = {}) {
      if (inflight) return inflight;
      return track(
        (async () => {
          const text = JSON.stringify(body);
          const old = load();
          if (old && !old.receipt) {
            const receipt = await send(old, signal);
            if (old.body === text && old.url === url) return receipt;
          }
          const record = { key: newKey(), body: text, url, started_at: new Date().toISOString() };
          save(record); // before the request: a crash from here on resumes this attempt
          return send(record, signal);
        })(),
      );
    },
    /** Forgets the stored attempt and its receipt. */
    clear: () => storage.removeItem(storageKey),
  };

  function track(promise) {
    inflight = promise;
    const done = () => {
      if (inflight === promise) inflight = null;
    };
    promise.then(done, done);
    return promise;
  }
}

/** The events of a text/event-stream response body, as {event, data}. */
export async function* readEvents(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
      let end;
      while ((end = text.indexOf("\n\n")) >= 0) {
        const block = text.slice(0, end);
        text = text.slice(end + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue; // a comment: the server's keep-alive
          const colon = line.indexOf(":");
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
          if (field === "event") event = value;
          else if (field === "data") data.push(value);
        }
        if (data.length) yield { event, data: data.join("\n") };
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * Follows the status at `url` until `isFinal(status)` (default: "graded"), calling
 * onStatus with every status that differs from the last, and resolves with the final
 * one. It listens to the server-sent events at `${url}/events` (read with fetch, so
 * that the Authorization header goes along), and polls GET `url` while the stream
 * cannot be had: again 3 s after a stream that ended, 30 s after one refused.
 * Network errors, 404 (a server that cannot tell yet), 429 and 5xx are waited out;
 * 401 and 403 throw a SubmitError; `signal` aborts. onMode("events" | "polling") says
 * which is in use.
 */
export async function followStatus(url, options = {}) {
  const {
    headers,
    fetch: fetchFn = globalThis.fetch.bind(globalThis),
    onStatus = () => {},
    onMode = () => {},
    isFinal = (s) => s.status === "graded",
    events = true,
    intervalMs = 1000,
    maxIntervalMs = 10000,
    signal,
    sleep = abortable,
  } = options;
  let last = null;
  let wait = intervalMs;
  let streamAt = 0;
  let mode = null;
  const setMode = (m) => {
    if (m !== mode) onMode((mode = m));
  };
  const seen = (s) => {
    const text = JSON.stringify(s);
    if (text === last) return false;
    last = text;
    wait = intervalMs;
    onStatus(s);
    return true;
  };

  // One stream: the final status, or null when it failed or ended first.
  async function listen() {
    let res;
    try {
      res = await fetchFn(`${url}/events`, { headers: resolveHeaders(headers), signal, cache: "no-store" });
    } catch (e) {
      if (signal?.aborted) throw e;
      streamAt = Date.now() + 30000;
      return null;
    }
    if (res.status === 401 || res.status === 403) {
      const { code, message } = await errorBody(res);
      throw new SubmitError(res.status, code, message);
    }
    if (!res.ok || !(res.headers.get("Content-Type") || "").startsWith("text/event-stream")) {
      res.body?.cancel().catch(() => {});
      streamAt = Date.now() + 30000;
      return null;
    }
    setMode("events");
    try {
      for await (const ev of readEvents(res)) {
        let body;
        try {
          body = JSON.parse(ev.data);
        } catch {
          continue;
        }
        if (ev.event === "status" && typeof body?.status === "string") {
          seen(body);
          if (isFinal(body)) return body;
        } else if (ev.event === "error" && body?.error === "unauthorized") {
          throw new SubmitError(401, body.error, body.message);
        }
      }
    } catch (e) {
      if (e instanceof SubmitError || signal?.aborted) throw e;
    }
    streamAt = Date.now() + 3000; // ended (a server restarting, say): back soon
    return null;
  }

  for (;;) {
    if (events && Date.now() >= streamAt) {
      const final = await listen();
      if (final) return final;
    }
    setMode("polling");
    let res = null;
    try {
      res = await fetchFn(url, { headers: resolveHeaders(headers), signal, cache: "no-store" });
    } catch (e) {
      if (signal?.aborted) throw e;
    }
    if (res?.ok) {
      const s = await res.json().catch(() => null);
      if (s && typeof s.status === "string") {
        seen(s);
        if (isFinal(s)) return s;
      }
    } else if (res && (res.status === 401 || res.status === 403)) {
      const { code, message } = await errorBody(res);
      throw new SubmitError(res.status, code, message);
    }
    const asked = res ? retryAfterMs(res.headers.get("Retry-After")) : 0;
    await sleep(Math.max(asked, wait), signal);
    wait = Math.min(maxIntervalMs, wait * 1.5);
  }
}
