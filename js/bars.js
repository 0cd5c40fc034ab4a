// Predicted probabilities as horizontal bars, one row per shown class (the rest summed in
// one row): the target red, the predicted class blue, the others grey. Plain DOM, no
// plotting library, so it renders wherever anywidget does (JupyterLab, marimo, VS Code).
import { listen } from "./paint.js";

const COLOURS = { target: "#d62728", predicted: "#4c72b0", other: "#9aa9bf", rest: "#6b6b6b" };
const STYLE = `
.xai-bars-view { font: 13px/1.4 var(--xai-font, system-ui, sans-serif); color: inherit;
  max-width: 460px; width: 100%; box-sizing: border-box; }
.xai-bars-title { font-weight: 600; margin-bottom: 6px; }
.xai-bars-rows { display: grid; grid-template-columns: max-content 1fr 3.6em; gap: 3px 8px;
  align-items: center; }
.xai-bar-name { text-align: right; white-space: nowrap; overflow: hidden; text-overflow: ellipsis;
  max-width: 14em; }
.xai-bar-track { height: 14px; background: rgba(127, 127, 127, 0.12); border-radius: 2px; }
.xai-bar { height: 100%; border-radius: 2px; min-width: 1px; }
.xai-bar-value { text-align: right; font-variant-numeric: tabular-nums; }
.xai-bars-legend, .xai-bars-caption { margin-top: 6px; opacity: 0.85; }
.xai-bars-legend span { display: inline-block; width: 11px; height: 11px; border-radius: 2px;
  margin: 0 4px 0 10px; vertical-align: -1px; }
.xai-bars-legend span:first-child { margin-left: 0; }`;

function render({ model, el }) {
  el.classList.add("xai-bars-view");
  const style = document.createElement("style");
  style.textContent = STYLE;
  const title = document.createElement("div");
  title.className = "xai-bars-title";
  const rows = document.createElement("div");
  rows.className = "xai-bars-rows";
  const legend = document.createElement("div");
  legend.className = "xai-bars-legend";
  legend.innerHTML = [["target", "target"], ["predicted", "predicted"], ["other", "other shown classes"]]
    .map(([role, name]) => `<span style="background:${COLOURS[role]}"></span>${name}`).join(" ");
  const caption = document.createElement("div");
  caption.className = "xai-bars-caption";
  el.replaceChildren(style, title, rows, legend, caption);

  function update() {
    const names = model.get("names");
    const values = model.get("values");
    const roles = model.get("roles");
    title.textContent = model.get("title");
    caption.textContent = model.get("caption");
    rows.replaceChildren();
    names.forEach((name, i) => {
      const value = values[i] || 0;
      const label = document.createElement("span");
      label.className = "xai-bar-name";
      label.textContent = name;
      label.title = name;
      const track = document.createElement("span");
      track.className = "xai-bar-track";
      const bar = document.createElement("div");
      bar.className = `xai-bar xai-bar-${roles[i] || "other"}`;
      bar.style.width = `${(100 * Math.min(1, Math.max(0, value))).toFixed(2)}%`;
      bar.style.background = COLOURS[roles[i]] || COLOURS.other;
      bar.dataset.value = String(value);
      track.append(bar);
      const text = document.createElement("span");
      text.className = "xai-bar-value";
      text.textContent = `${(100 * value).toFixed(1)}%`;
      rows.append(label, track, text);
    });
    el.dataset.version = String(Number(el.dataset.version || 0) + 1);
  }

  return listen(model, ["names", "values", "roles", "title", "caption"], update);
}

export default { render };
