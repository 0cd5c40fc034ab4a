// The large view: the input image beside the target's map overlaid on it, a colour bar
// with the value range, and a line that states the colour convention.
import { decode } from "./codecs.js";
import { baseImage, colourBar, draw, formatValue, listen, overlay } from "./paint.js";

function render({ model, el }) {
  el.classList.add("xai-heatmap");
  el.innerHTML = `
    <div class="xai-heatmap-row">
      <figure class="xai-fig-input"><canvas class="xai-heatmap-input"></canvas><figcaption>input</figcaption></figure>
      <figure class="xai-fig-large"><div class="xai-large-row"><canvas class="xai-heatmap-large"></canvas>
        <div class="xai-colourbar"><canvas></canvas>
          <div class="xai-cb-labels"><span class="xai-cb-top"></span><span class="xai-cb-mid"></span><span class="xai-cb-bottom"></span></div>
        </div></div>
        <figcaption class="xai-heatmap-title"></figcaption></figure>
    </div>
    <div class="xai-convention"></div>`;
  const input = el.querySelector(".xai-heatmap-input");
  const large = el.querySelector(".xai-heatmap-large");
  const bar = el.querySelector(".xai-colourbar canvas");

  function update() {
    const image = decode(model.get("image"));
    const map = decode(model.get("attribution"));
    const px = model.get("size");
    el.querySelector(".xai-fig-large").style.maxWidth = `${px + 70}px`;
    el.querySelector(".xai-heatmap-title").textContent = model.get("title");
    el.querySelector(".xai-convention").textContent = model.get("convention");
    if (!image) return;
    const [, h, w] = image.shape;
    const grey = model.get("grey");
    draw(input, baseImage(image, 0), h, w, Math.round(px / 2));
    const absValues = model.get("abs_values");
    const vmax = model.get("vmax");
    const pixels = map ? overlay(baseImage(image, 0.55, grey), map.data, 0, h * w, vmax, absValues)
      : baseImage(image, 0, grey);
    draw(large, pixels, h, w, px);
    colourBar(bar, absValues, 200);
    el.querySelector(".xai-cb-top").textContent = "+" + formatValue(vmax);
    el.querySelector(".xai-cb-mid").textContent = absValues ? "" : "0";
    el.querySelector(".xai-cb-bottom").textContent = absValues ? "0" : "−" + formatValue(vmax);
    el.dataset.version = String(Number(el.dataset.version || 0) + 1);
  }

  return listen(model, ["image", "attribution", "vmax", "abs_values", "grey", "title",
                        "convention", "size"], update);
}

export default { render };
