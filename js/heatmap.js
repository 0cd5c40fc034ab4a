// The large view: the input image beside the target's map overlaid on it, a colour bar
// with the value range, and a line that states the colour convention.
import { decode } from "./codecs.js";
import { baseImage, colourBar, draw, formatValue, overlay } from "./paint.js";

function render({ model, el }) {
  el.classList.add("xai-heatmap");
  el.innerHTML = `
    <div class="xai-heatmap-row">
      <figure><canvas class="xai-heatmap-input"></canvas><figcaption>input</figcaption></figure>
      <figure><canvas class="xai-heatmap-large"></canvas><figcaption class="xai-heatmap-title"></figcaption></figure>
      <div class="xai-colourbar">
        <canvas></canvas>
        <div class="xai-cb-labels">
          <span class="xai-cb-top"></span><span class="xai-cb-mid"></span><span class="xai-cb-bottom"></span>
        </div>
      </div>
    </div>
    <div class="xai-convention"></div>`;
  const input = el.querySelector(".xai-heatmap-input");
  const large = el.querySelector(".xai-heatmap-large");
  const bar = el.querySelector(".xai-colourbar canvas");

  function update() {
    const image = decode(model.get("image"));
    const map = decode(model.get("attribution"));
    const px = model.get("size");
    el.querySelector(".xai-heatmap-title").textContent = model.get("title");
    el.querySelector(".xai-convention").textContent = model.get("convention");
    if (!image) return;
    const [, h, w] = image.shape;
    const base = baseImage(image, 0);
    draw(input, base, h, w, Math.round(px / 2));
    const absValues = model.get("abs_values");
    const vmax = model.get("vmax");
    const pixels = map ? overlay(baseImage(image), map.data, 0, h * w, vmax, absValues) : base;
    draw(large, pixels, h, w, px);
    colourBar(bar, absValues, large.height);
    el.querySelector(".xai-cb-labels").style.height = `${large.height}px`;
    el.querySelector(".xai-cb-top").textContent = "+" + formatValue(vmax);
    el.querySelector(".xai-cb-mid").textContent = absValues ? "" : "0";
    el.querySelector(".xai-cb-bottom").textContent = absValues ? "0" : "−" + formatValue(vmax);
    el.dataset.version = String(Number(el.dataset.version || 0) + 1);
  }

  const names = ["image", "attribution", "vmax", "abs_values", "title", "convention", "size"];
  for (const name of names) model.on(`change:${name}`, update);
  update();
  return () => { for (const name of names) model.off(`change:${name}`, update); };
}

export default { render };
