// Superpixels over the image, each coloured by its weight for the target; hidden segments
// show the baseline and are outlined. Clicking a segment hides it or brings it back.
import { decode } from "./codecs.js";
import { RED, BLUE, baseImage, draw, listen } from "./paint.js";

function render({ model, el }) {
  el.classList.add("xai-superpixels");
  el.innerHTML = `<canvas class="xai-sp-canvas"></canvas><div class="xai-sp-caption"></div>`;
  const canvas = el.querySelector("canvas");
  let labels = null;

  function update() {
    const image = decode(model.get("image"));
    const masked = decode(model.get("masked_image"));
    const segments = decode(model.get("segments"));
    const weights = model.get("weights");
    const hidden = new Set(model.get("hidden"));
    el.querySelector(".xai-sp-caption").textContent = model.get("caption");
    if (!image || !segments) return;
    labels = segments;
    const [, h, w] = image.shape;
    const shown = baseImage(masked || image, 0.35, model.get("grey"));
    const vmax = Math.max(1e-12, ...weights.map(Math.abs));
    for (let i = 0; i < h * w; i++) {
      const s = segments.data[i];
      if (hidden.has(s)) continue;
      const v = (weights[s] || 0) / vmax;
      const a = Math.min(1, Math.abs(v)) ** 0.75 * 0.8;
      const colour = v >= 0 ? RED : BLUE;
      for (let k = 0; k < 3; k++) shown[4 * i + k] = shown[4 * i + k] * (1 - a) + colour[k] * a;
    }
    const px = model.get("size");
    draw(canvas, shown, h, w, px);
    // hidden segments hatched, boundaries thin yellow (white around hidden ones)
    const ctx = canvas.getContext("2d");
    const cell = canvas.width / w;
    ctx.fillStyle = "rgba(255,255,255,0.35)";
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        if (hidden.has(segments.data[y * w + x]) && (x + y) % 2 === 0) {
          ctx.fillRect(x * cell, y * cell, cell, cell);
        }
      }
    }
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const s = segments.data[y * w + x];
        const right = x + 1 < w ? segments.data[y * w + x + 1] : s;
        const down = y + 1 < h ? segments.data[(y + 1) * w + x] : s;
        ctx.fillStyle = hidden.has(s) ? "rgba(255,255,255,0.9)" : "rgba(255,214,10,0.85)";
        if (right !== s) ctx.fillRect((x + 1) * cell - 1, y * cell, 2, cell);
        if (down !== s) ctx.fillRect(x * cell, (y + 1) * cell - 1, cell, 2);
      }
    }
    el.dataset.version = String(Number(el.dataset.version || 0) + 1);
  }

  function onClick(event) {
    if (!labels) return;
    const rect = canvas.getBoundingClientRect();
    const [h, w] = labels.shape;
    const x = Math.floor((event.clientX - rect.left) / rect.width * w);
    const y = Math.floor((event.clientY - rect.top) / rect.height * h);
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    const segment = labels.data[y * w + x];
    const hidden = new Set(model.get("hidden"));
    hidden.has(segment) ? hidden.delete(segment) : hidden.add(segment);
    model.set("hidden", [...hidden].sort((a, b) => a - b));
    model.save_changes();
  }

  canvas.addEventListener("click", onClick);
  const names = ["image", "masked_image", "segments", "weights", "hidden", "caption", "size", "grey"];
  for (const name of names) model.on(`change:${name}`, update);
  update();
  return () => {
    canvas.removeEventListener("click", onClick);
    for (const name of names) model.off(`change:${name}`, update);
  };
}

export default { render };
