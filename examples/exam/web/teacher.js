// The teacher page: where submissions stand (GET /v1/overview, every second), the
// chart of accepted against written, this exam's dead letters with a replay button,
// and the graded submissions a page at a time.
import { drawChart } from "./chart.js";

const $ = (id) => document.getElementById(id);
const PAGE = 50;

// The sign-in comes in the URL fragment (#exam=ID&token=JWT), which never reaches a
// server or a log; it is kept for this tab and taken out of the address bar.
function signIn() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) sessionStorage.setItem("teacher-token", hash.get("token"));
  if (hash.get("exam")) sessionStorage.setItem("teacher-exam", hash.get("exam"));
  const token = sessionStorage.getItem("teacher-token");
  const exam = sessionStorage.getItem("teacher-exam") || "demo";
  if (hash.has("token")) history.replaceState(null, "", `${location.pathname}#exam=${encodeURIComponent(exam)}`);
  return token ? { token, exam } : null;
}

const session = signIn();

function notice(text, kind = "") {
  $("notice").textContent = text;
  $("notice").className = kind;
}

// GET or POST as the teacher; the JSON answer, or an Error carrying `status`.
async function api(path, method = "GET") {
  let res;
  try {
    res = await fetch(path, { method, headers: { Authorization: `Bearer ${session.token}` } });
  } catch {
    throw Object.assign(new Error("The server cannot be reached; trying again."), { status: 0 });
  }
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw Object.assign(new Error(body.message || `HTTP ${res.status}`), { status: res.status });
  return body;
}

// What a failed read tells the teacher (cleared by the next read that works); a lost
// sign-in stops the page's updates.
let stopped = false;
function failed(e) {
  if (e.status === 401 || e.status === 403) {
    stopped = true;
    notice(e.status === 401 ? "Your sign-in has expired: open the teacher link again." : e.message, "busy");
  } else notice(e.message, "busy read");
}

const number = (v) => (v === null || v === undefined ? "–" : v.toLocaleString("en"));
const time = (t) => (t ? t.replace("T", " ").replace(/\.\d+Z$/, " UTC") : "");
const cellTime = (t) => (t ? t.replace("T", " ").replace(/\.\d+Z$/, "") : "");

// A receipt's cell: its id up to the signature, the whole id on hover and for copying.
function receiptCell(row, id) {
  const td = row.insertCell();
  td.textContent = id.split(".")[0];
  td.title = id;
  row.dataset.receipt = id;
}

async function refreshOverview() {
  const o = await api("/v1/overview");
  $("count-received").textContent = number(o.counts.received);
  $("count-processing").textContent = number(o.counts.processing);
  $("count-graded").textContent = number(o.counts.graded);
  $("count-dead").textContent = number(o.counts.dead_lettered);
  $("count-backlog").textContent = number(o.backlog);
  $("sampled").textContent = o.sampled_at ? ` (last at ${time(o.sampled_at)})` : "";
  drawChart($("chart"), o.series, $("chart-summary"));
}

function cells(row, values) {
  for (const v of values) {
    const td = document.createElement("td");
    td.textContent = v;
    row.append(td);
  }
}

// A cell with a button per file the submission names; each asks for a short-lived
// download URL and goes to it (the storage answers it as a download).
function filesCell(row, files = []) {
  const td = row.insertCell();
  for (const f of files) {
    const name = f.filename || f.key.split("/").pop();
    const button = Object.assign(document.createElement("button"), {
      type: "button", className: "file secondary", textContent: name,
    });
    button.setAttribute("aria-label", `Download ${name}`);
    button.addEventListener("click", () => download(f, name, button));
    td.append(button);
  }
}

async function download(file, name, button) {
  button.disabled = true;
  try {
    const query = `key=${encodeURIComponent(file.key)}&filename=${encodeURIComponent(name)}`;
    const { url } = await api(`/v1/exams/${encodeURIComponent(session.exam)}/attachments?${query}`);
    location.assign(url);
  } catch (e) {
    if (e.status === 401) return failed(e);
    notice(`Not downloaded: ${e.message}`, "busy");
  } finally {
    button.disabled = false;
  }
}

const replaying = new Set(); // their buttons stay disabled while the table is redrawn

async function replay(id, button) {
  button.disabled = true;
  replaying.add(id);
  try {
    await api(`/v1/exams/${encodeURIComponent(session.exam)}/dead-letters/${encodeURIComponent(id)}/replay`, "POST");
    notice(`Replayed ${id}: it is back in the queue and will be graded.`);
  } catch (e) {
    button.disabled = false;
    if (e.status === 401) return failed(e);
    return notice(`Not replayed: ${e.message}`, "busy"); // stays until the teacher acts again
  } finally {
    replaying.delete(id);
  }
  await Promise.all([refreshDeadLetters(), refreshOverview()]).catch(failed);
}

// This exam's dead letters, up to a page of them: the server scans the queue's dead
// letters (of every exam) a bounded stretch per request, so a page may come back empty
// with a place to go on from.
async function deadLetters() {
  const items = [];
  let after = "";
  for (let asked = 0; asked < 20 && items.length < PAGE; asked++) {
    const page = await api(
      `/v1/exams/${encodeURIComponent(session.exam)}/dead-letters?limit=${PAGE - items.length}` +
        `&after=${encodeURIComponent(after)}`,
    );
    items.push(...page.items);
    if (!page.next_after) return { items, more: false };
    after = page.next_after;
  }
  return { items, more: true };
}

async function refreshDeadLetters() {
  const page = await deadLetters();
  const body = $("dead").tBodies[0];
  body.replaceChildren();
  for (const d of page.items) {
    const row = body.insertRow();
    const button = Object.assign(document.createElement("button"), { type: "button", textContent: "Replay" });
    button.disabled = replaying.has(d.receipt_id);
    button.setAttribute("aria-label", `Replay ${d.receipt_id} of ${d.student_id}`);
    button.addEventListener("click", () => replay(d.receipt_id, button));
    row.insertCell().append(button);
    receiptCell(row, d.receipt_id);
    cells(row, [d.student_id, d.last_error ? `${d.reason}: ${d.last_error}` : d.reason,
      String(d.attempts), cellTime(d.accepted_at), cellTime(d.dead_lettered_at)]);
    filesCell(row, d.attachments);
  }
  $("dead").hidden = page.items.length === 0;
  $("dead-none").hidden = page.items.length !== 0 || page.more;
  $("dead-more").hidden = !page.more;
}

// Pages go forward by the last receipt shown; the ones before are remembered.
const pages = [""];
async function refreshList() {
  const after = pages[pages.length - 1];
  const page = await api(
    `/v1/exams/${encodeURIComponent(session.exam)}/submissions?limit=${PAGE}&after=${encodeURIComponent(after)}`,
  );
  const body = $("list").tBodies[0];
  body.replaceChildren();
  for (const s of page.items) {
    const row = body.insertRow();
    receiptCell(row, s.receipt_id);
    cells(row, [s.student_id, cellTime(s.accepted_at), s.status, s.score === undefined ? "" : `${s.score}%`]);
    filesCell(row, s.attachments);
  }
  $("page-no").textContent = page.items.length ? `Page ${pages.length}` : "No graded submissions yet";
  $("prev").disabled = pages.length === 1;
  $("next").disabled = !page.next_after;
  $("next").dataset.after = page.next_after || "";
}

$("next").addEventListener("click", () => {
  pages.push($("next").dataset.after);
  refreshList().catch(failed);
});
$("prev").addEventListener("click", () => {
  if (pages.length > 1) pages.pop();
  refreshList().catch(failed);
});

// Reads every `ms`, one at a time (a slow answer delays the next instead of piling up).
function every(ms, read) {
  const tick = async () => {
    if (stopped) return;
    try {
      await read();
      if ($("notice").className === "busy read") notice("");
    } catch (e) {
      failed(e);
    }
    setTimeout(tick, ms);
  };
  tick();
}

async function start() {
  if (!session) return notice("Open this page with the teacher link the server printed.", "busy");
  try {
    const exam = await api(`/v1/exams/${encodeURIComponent(session.exam)}`);
    $("title").textContent = `${exam.title || exam.exam_id}: submissions`;
    document.title = `${exam.title || exam.exam_id}: teacher`;
    $("who").textContent = `Exam ${exam.exam_id}, deadline ${time(exam.deadline)}`;
  } catch (e) {
    return failed(e);
  }
  every(1000, refreshOverview);
  every(5000, refreshDeadLetters);
  every(2000, refreshList);
}

start();
