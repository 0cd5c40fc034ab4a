// x, the morph frame at the slider's position, x′, and the difference x′ − x
// (red = added, blue = removed).
import { decode } from "./codecs.js";
import { baseImage, draw, formatValue, overlay, listen } from "./paint.js";

function render({ model, el }) {
  el.classList.add("xai-counterfactual");
  const names = ["x", "morph", "x′", "x′ − x"];
  el.innerHTML = `<div class="xai-cf-row">${names.map((n, i) =>
    `<figure><canvas class="xai-cf-${i}"></canvas><figcaption>${n}</figcaption></figure>`).join("")}
    </div><div class="xai-cf-caption"></div>`;
  const canvases = [0, 1, 2, 3].map((i) => el.querySelector(`.xai-cf-${i}`));

  function update() {
    const original = decode(model.get("original"));
    const frame = decode(model.get("frame"));
    const result = decode(model.get("counterfactual"));
    el.querySelector(".xai-cf-caption").textContent = model.get("caption");
    el.style.display = original ? "" : "none";
    if (!original || !result) return;
    const [, h, w] = original.shape;
    const px = model.get("size");
    draw(canvases[0], baseImage(original, 0), h, w, px);
    draw(canvases[1], baseImage(frame || original, 0), h, w, px);
    draw(canvases[2], baseImage(result, 0), h, w, px);
    const diff = new Float32Array(h * w);
    let vmax = 0;
    for (let i = 0; i < h * w; i++) {
      for (let c = 0; c < original.shape[0]; c++) diff[i] += result.data[c * h * w + i] - original.data[c * h * w + i];
      vmax = Math.max(vmax, Math.abs(diff[i]));
    }
    draw(canvases[3], overlay(baseImage(original, 0.75), diff, 0, h * w, vmax, false), h, w, px);
    canvases[3].title = `largest change ${formatValue(vmax)}`;
    el.dataset.version = String(Number(el.dataset.version || 0) + 1);
  }

  return listen(model, ["original", "frame", "counterfactual", "caption", "size"], update);
}

export default { render };
