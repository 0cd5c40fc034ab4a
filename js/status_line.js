// The status line: ✓ and the last update, or the progress of the running computation, or
// the error; the explanation's notes below it.
import { listen } from "./paint.js";

const STYLE = `
.xai-status-view { font: 14px/1.45 var(--xai-font, system-ui, sans-serif); color: inherit; }
.xai-status-row { display: flex; align-items: center; gap: 10px; flex-wrap: wrap; }
.xai-status-view .xai-ok { color: var(--xai-ok, #1b6e20); font-weight: 700; }
.xai-status-view .xai-error { color: var(--xai-error, #b00020); font-weight: 600; }
.xai-status-view .xai-busy { opacity: 0.85; }
.xai-status-view progress { width: 200px; }
.xai-status-view ul { margin: 2px 0; padding-left: 20px; font-size: 13px; opacity: 0.85; }`;

function render({ model, el }) {
  el.classList.add("xai-status-view");
  const style = document.createElement("style");
  style.textContent = STYLE;
  const row = document.createElement("div");
  row.className = "xai-status-row";
  const line = document.createElement("span");
  line.className = "xai-status";
  const bar = document.createElement("progress");
  bar.max = 1;
  row.append(line, bar);
  const notes = document.createElement("ul");
  el.replaceChildren(style, row, notes);

  function update() {
    const kind = model.get("kind");
    const text = model.get("text");
    line.replaceChildren();
    if (kind === "ok" || kind === "error") {
      const mark = document.createElement("span");
      mark.className = kind === "ok" ? "xai-ok" : "xai-error";
      mark.textContent = kind === "ok" ? "✓ " : "⚠ ";
      line.append(mark);
    }
    const body = document.createElement("span");
    body.className = kind === "error" ? "xai-error" : kind === "busy" ? "xai-busy" : "";
    body.textContent = text;
    line.append(body);
    el.dataset.kind = kind;
    const progress = model.get("progress");
    bar.style.visibility = progress >= 0 ? "visible" : "hidden";
    if (progress >= 0) bar.value = progress;
    notes.replaceChildren(...model.get("notes").map((note) => {
      const item = document.createElement("li");
      item.textContent = note;
      return item;
    }));
  }

  return listen(model, ["kind", "text", "progress", "notes"], update);
}

export default { render };
