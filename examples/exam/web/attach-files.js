// attach-files.js: the files of a submission, sent straight to the storage.
//
// For each file: its SHA-256 (Web Crypto), an upload grant from the exam server
// (POST /v1/exams/{id}/uploads: a presigned PUT URL and the headers to send), then the
// PUT with progress (XMLHttpRequest: fetch reports no upload progress). A file the
// storage already has (same exam, name, size and SHA-256, this tab) is not sent again,
// so a retried submission names the same object. Busy answers (429, 5xx, no network)
// are retried with backoff; an expired URL gets a new grant; other refusals are thrown
// as SubmitError.
import { backoffMs, SubmitError } from "./ingest-submit.js";

const BUSY = new Set([408, 429, 500, 502, 503, 504]);

/** Lower-case hex SHA-256 of a Blob. */
export async function sha256Hex(blob) {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function wait(ms, signal) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    });
  });
}

// PUT `file` to `url`; resolves with the HTTP status (0: no answer within timeoutMs).
function put(url, headers, file, onProgress, signal, timeoutMs) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url);
    xhr.timeout = timeoutMs;
    for (const [name, value] of Object.entries(headers || {})) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => onProgress(e.loaded, e.total || file.size);
    xhr.onload = () => resolve(xhr.status);
    xhr.onerror = xhr.ontimeout = () => resolve(0);
    xhr.onabort = () => reject(signal?.reason ?? new Error("aborted"));
    signal?.addEventListener("abort", () => xhr.abort());
    xhr.send(file);
  });
}

async function grant(uploadsUrl, headers, file, sha256, signal) {
  const res = await fetch(uploadsUrl, {
    method: "POST",
    headers: { ...headers(), "Content-Type": "application/json" },
    body: JSON.stringify({
      filename: file.name,
      content_type: file.type || "application/octet-stream",
      size: file.size,
      sha256,
    }),
    signal,
  }).catch(() => null);
  if (res?.ok) return { grant: await res.json() };
  const body = res ? await res.json().catch(() => ({})) : {};
  if (!res || BUSY.has(res.status)) return { busy: true };
  throw new SubmitError(res.status, body.error, body.message);
}

/**
 * Uploads `file`; resolves with the reference a submission names ({key, sha256, size,
 * filename}). Options: uploadsUrl, headers (function), onProgress(sent, total),
 * onBusy({waitMs}), storage (default sessionStorage), signal, timeoutMs (of one PUT,
 * default 10 minutes).
 */
export async function uploadFile(file, options) {
  const { uploadsUrl, headers, onProgress = () => {}, onBusy = () => {}, storage = sessionStorage, signal } = options;
  const timeoutMs = options.timeoutMs ?? 600000;
  const sha256 = await sha256Hex(file);
  const cacheKey = `upload:${uploadsUrl}:${file.name}:${file.size}:${sha256}`;
  const cached = storage.getItem(cacheKey);
  if (cached) return JSON.parse(cached);
  let current = null;
  let refusedInARow = 0; // 403s: an expired URL once; more is the storage refusing
  for (let attempt = 1; ; attempt++) {
    if (!current) {
      const asked = await grant(uploadsUrl, headers, file, sha256, signal);
      current = asked.grant;
    }
    if (current) {
      const status = await put(current.upload_url, current.headers, file, onProgress, signal, timeoutMs);
      if (status >= 200 && status < 300) {
        storage.setItem(cacheKey, JSON.stringify(current.attachment));
        return current.attachment;
      }
      if (status === 403 && ++refusedInARow < 2) current = null; // the URL expired: ask for a new one
      else if (status === 403) throw new SubmitError(403, "upload_refused", "the storage refused the upload (HTTP 403)");
      else if (status !== 0 && !BUSY.has(status)) throw new SubmitError(status, "upload_refused", `the storage refused the file (HTTP ${status})`);
    }
    const waitMs = Math.round(backoffMs(attempt));
    onBusy({ waitMs });
    await wait(waitMs, signal);
  }
}

/** The server's limits for `files` (exam.attachments), or the reason they do not fit. */
export function checkFiles(files, limits) {
  if (!files.length) return "";
  if (!limits) return "This exam takes no files.";
  if (files.length > limits.max_files) return `At most ${limits.max_files} files.`;
  for (const f of files) {
    if (f.size > limits.max_bytes) return `${f.name} is larger than ${Math.floor(limits.max_bytes / 1048576)} MiB.`;
    if (!limits.content_types.includes(f.type)) return `${f.name}: files of type ${f.type || "unknown"} are not taken.`;
  }
  return "";
}

