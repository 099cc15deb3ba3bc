// The teacher page's chart: accepted and written per second over the sampled window,
// drawn as SVG (no library). A period whose count is unknown breaks the line.
const NS = "http://www.w3.org/2000/svg";
const W = 640, H = 220, LEFT = 52, RIGHT = 8, TOP = 10, BOTTOM = 26;

function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// Grid lines at a step of 1, 2 or 5 times a power of ten (whole numbers), about five
// of them, the top one at or above `max`.
function scale(max) {
  if (max <= 5) return { step: 1, top: 5 };
  const rough = max / 5;
  const p = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= rough);
  return { step, top: Math.ceil(max / step) * step };
}

function paths(values, x, y) {
  const runs = [];
  let run = [];
  values.forEach((v, i) => {
    if (v === null) {
      if (run.length) runs.push(run);
      run = [];
    } else run.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
  });
  if (run.length) runs.push(run);
  return runs.map((r) => (r.length === 1 ? [r[0], r[0]] : r).join(" "));
}

// series: {period_ms, accepted: [n|null...], written: [...]}, oldest first, the last
// ending now. The x axis spans what was sampled, a minute at least.
export function drawChart(svg, series, summary) {
  const perSecond = (n) => (n === null ? null : (n * 1000) / series.period_ms);
  const accepted = series.accepted.map(perSecond);
  const written = series.written.map(perSecond);
  const { step, top } = scale(
    Math.max(0, ...accepted.filter((v) => v !== null), ...written.filter((v) => v !== null)),
  );
  const span = Math.max(Math.round(60000 / series.period_ms), accepted.length);
  const offset = span - accepted.length;  // the window fills from the right
  const x = (i) => LEFT + ((i + offset) / Math.max(1, span - 1)) * (W - LEFT - RIGHT);
  const y = (v) => TOP + (1 - v / top) * (H - TOP - BOTTOM);
  const parts = [];
  for (let v = 0; v <= top; v += step) {
    parts.push(el("line", { class: "grid", x1: LEFT, x2: W - RIGHT, y1: y(v), y2: y(v) }));
    parts.push(el("text", { class: "tick", x: LEFT - 6, y: y(v) + 4, "text-anchor": "end" }, v.toLocaleString("en")));
  }
  const seconds = (span * series.period_ms) / 1000;
  const marks = 5;
  for (let k = 0; k <= marks; k++) {
    const ago = Math.round(seconds - (seconds * k) / marks);
    const label = ago === 0 ? "now" : ago % 60 === 0 ? `-${ago / 60} min` : `-${ago} s`;
    const at = LEFT + (k / marks) * (W - LEFT - RIGHT);
    const anchor = k === 0 ? "start" : k === marks ? "end" : "middle";
    parts.push(el("text", { class: "tick", x: at, y: H - 6, "text-anchor": anchor }, label));
  }
  for (const [name, values] of [["written", written], ["accepted", accepted]])
    for (const points of paths(values, x, y)) parts.push(el("polyline", { class: `line ${name}`, points }));
  svg.replaceChildren(...parts);
  const last = (vs) => [...vs].reverse().find((v) => v !== null) ?? 0;
  const peak = (vs) => Math.max(0, ...vs.filter((v) => v !== null));
  summary.textContent =
    ` · now ${last(accepted).toLocaleString("en")}/s accepted, ${last(written).toLocaleString("en")}/s written;` +
    ` peaks ${peak(accepted).toLocaleString("en")}/s and ${peak(written).toLocaleString("en")}/s`;
}
