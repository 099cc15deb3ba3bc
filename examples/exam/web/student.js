// The student page: the exam's questions, one submission that survives retries and
// reloads (ingest-submit.js), its receipt and its status until graded.
import { createSubmitter, followStatus, SubmitError } from "./ingest-submit.js";
import { checkFiles, uploadFile } from "./attach-files.js";

const $ = (id) => document.getElementById(id);

// The sign-in comes in the URL fragment (#exam=ID&token=JWT), which never reaches a
// server or a log; it is kept for this tab and taken out of the address bar.
function signIn() {
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) sessionStorage.setItem("exam-token", hash.get("token"));
  if (hash.get("exam")) sessionStorage.setItem("exam-id", hash.get("exam"));
  const token = sessionStorage.getItem("exam-token");
  const exam = sessionStorage.getItem("exam-id") || "demo";
  if (hash.has("token")) history.replaceState(null, "", `${location.pathname}#exam=${encodeURIComponent(exam)}`);
  if (!token) return null;
  try {
    const claims = JSON.parse(atob(token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
    return { token, exam, student: String(claims.sub) };
  } catch {
    return null;
  }
}

function notice(text, kind = "") {
  $("notice").textContent = text;
  $("notice").className = kind;
}

const STATUS_TEXT = {
  received: "Received: waiting to be graded",
  processing: "Being graded",
  dead_lettered: "Received: waiting to be graded",
};

function showStatus(s) {
  const el = $("status");
  if (s.status === "graded") {
    el.textContent = s.score === undefined ? "Graded" : `Graded: score ${s.score}%`;
  } else {
    el.textContent = STATUS_TEXT[s.status] || "Received";
  }
  el.className = s.status;
}

function renderQuestions(exam) {
  const box = $("questions");
  box.replaceChildren();
  exam.questions.forEach((q, i) => {
    const set = document.createElement("fieldset");
    const legend = document.createElement("legend");
    legend.textContent = `Question ${i + 1}`;
    set.append(legend);
    if (exam.choices.length) {
      const row = document.createElement("div");
      row.className = "choices";
      for (const c of exam.choices) {
        const label = document.createElement("label");
        const input = Object.assign(document.createElement("input"), { type: "radio", name: q, value: c });
        label.append(input, c);
        row.append(label);
      }
      set.append(row);
    } else {
      const input = Object.assign(document.createElement("input"), { type: "text", name: q });
      input.setAttribute("aria-label", `Answer to question ${i + 1}`);
      set.append(input);
    }
    box.append(set);
  });
}

function collectAnswers(form) {
  const answers = {};
  for (const [name, value] of new FormData(form)) if (value !== "") answers[name] = String(value);
  return answers;
}

async function main() {
  const who = signIn();
  if (!who) {
    notice("Open this page with the link the server printed: it carries your sign-in after the # sign.");
    return;
  }
  const headers = () => ({ Authorization: `Bearer ${who.token}` });
  $("who").textContent = `Signed in as ${who.student}`;
  let follow = null;
  let exam = null;

  const submitter = createSubmitter({
    url: `/v1/exams/${encodeURIComponent(who.exam)}/submissions`,
    storageKey: `exam-submission:${who.exam}:${who.student}`,
    headers,
    onSending: ({ attempt }) => {
      if (attempt === 1) notice("Sending your answers…");
    },
    onBusy: ({ waitMs }) =>
      notice(
        `The server is busy. Your answers are saved in this browser and will be sent again ` +
          `automatically in ${Math.max(1, Math.round(waitMs / 1000))} s. You do not need to do anything.`,
        "busy",
      ),
  });

  function showReceipt(r, focus) {
    notice("");
    $("answers").hidden = true;
    $("receipt").hidden = false;
    $("receipt-id").textContent = r.receipt_id;
    const at = new Date(r.accepted_at);
    $("accepted-at").textContent = `${at.toLocaleString()} (${r.accepted_at})`;
    showStatus(r);
    if (focus) $("receipt-title").focus();
    follow?.abort();
    follow = new AbortController();
    followStatus(`/v1/submissions/${encodeURIComponent(r.receipt_id)}`, {
      headers,
      onStatus: showStatus,
      signal: follow.signal,
    }).catch(() => {});
  }

  async function run(sending, focus) {
    $("submit").disabled = true;
    try {
      const r = await sending;
      if (r) showReceipt(r, focus);
    } catch (e) {
      if (e instanceof SubmitError) notice(`Not accepted: ${e.message}`, "busy");
      else throw e;
    } finally {
      $("submit").disabled = false;
    }
  }

  // The files go to the storage first (each once, even across retries), then the
  // submission names them.
  async function send(form) {
    const answers = collectAnswers(form);
    const files = [...$("file-input").files];
    const why = checkFiles(files, exam.attachments);
    if (why) throw new SubmitError(400, "invalid_attachments", why);
    const attachments = [];
    const bar = $("upload-progress");
    for (const f of files) {
      bar.hidden = false;
      attachments.push(
        await uploadFile(f, {
          uploadsUrl: `/v1/exams/${encodeURIComponent(who.exam)}/uploads`,
          headers,
          onProgress: (sent, total) => {
            bar.value = total ? sent / total : 0;
            notice(`Uploading ${f.name}: ${Math.round((100 * sent) / Math.max(1, total))} %`);
          },
          onBusy: ({ waitMs }) =>
            notice(
              `The file storage is not answering. ${f.name} will be sent again automatically in ` +
                `${Math.max(1, Math.round(waitMs / 1000))} s. You do not need to do anything.`,
              "busy",
            ),
        }),
      );
    }
    bar.hidden = true;
    return submitter.submit(attachments.length ? { answers, attachments } : { answers });
  }

  $("answers").addEventListener("submit", (ev) => {
    ev.preventDefault();
    if ($("submit").disabled) return;
    run(send(ev.target), true);
  });
  $("again").addEventListener("click", () => {
    follow?.abort();
    $("receipt").hidden = true;
    $("answers").hidden = false;
    notice("Answer and submit again: that is a new submission, with its own receipt.");
  });

  const res = await fetch(`/v1/exams/${encodeURIComponent(who.exam)}`, { headers: headers() });
  if (!res.ok) {
    const body = await res.json().catch(() => ({}));
    notice(body.message || `This exam cannot be shown (HTTP ${res.status}).`);
    return;
  }
  exam = await res.json();
  $("title").textContent = exam.title;
  document.title = exam.title;
  renderQuestions(exam);
  if (exam.attachments) {
    const a = exam.attachments;
    $("files").hidden = false;
    $("file-input").accept = a.content_types.join(",");
    $("file-limits").textContent =
      `Up to ${a.max_files} files of ${Math.floor(a.max_bytes / 1048576)} MiB each: ${a.content_types.join(", ")}.`;
  }
  const stored = submitter.stored();
  if (stored?.receipt) return showReceipt(stored.receipt, false);
  $("answers").hidden = false;
  if (stored) run(submitter.resume(), true); // sent before a reload or a crash: the same attempt again
}

main();
