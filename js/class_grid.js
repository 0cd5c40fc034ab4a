// One small heatmap per class on a shared colour scale; the predicted class and the target
// are marked, and clicking a tile makes it the target.
import { decode } from "./codecs.js";
import { baseImage, draw, overlay } from "./paint.js";

function render({ model, el }) {
  el.classList.add("xai-grid");

  function update() {
    const image = decode(model.get("image"));
    const maps = decode(model.get("maps"));
    const labels = model.get("labels");
    const probabilities = model.get("probabilities");
    const predicted = model.get("predicted");
    const target = model.get("target");
    const vmax = model.get("vmax");
    const absValues = model.get("abs_values");
    el.replaceChildren();
    if (!image || !maps) return;
    const [, h, w] = image.shape;
    const base = baseImage(image);
    maps.shape[0] && labels.forEach((label, i) => {
      const tile = document.createElement("button");
      tile.type = "button";
      tile.className = "xai-tile" + (i === target ? " xai-target" : "") +
        (i === predicted ? " xai-predicted" : "");
      tile.dataset.index = String(i);
      tile.title = `show the map of class ${label}`;
      const canvas = document.createElement("canvas");
      draw(canvas, overlay(base, maps.data, i * h * w, h * w, vmax, absValues), h, w, 76);
      const caption = document.createElement("span");
      const p = probabilities[i] === undefined ? "" : ` · ${(100 * probabilities[i]).toFixed(1)}%`;
      caption.textContent = (i === predicted ? "★ " : "") + label + p;
      tile.append(canvas, caption);
      tile.addEventListener("click", () => {
        model.set("target", i);
        model.save_changes();
      });
      el.append(tile);
    });
  }

  const names = ["image", "maps", "labels", "probabilities", "predicted", "target", "vmax",
                 "abs_values"];
  for (const name of names) model.on(`change:${name}`, update);
  update();
  return () => { for (const name of names) model.off(`change:${name}`, update); };
}

export default { render };
