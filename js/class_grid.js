// One small heatmap per shown class, each on its own colour scale or a shared one; the
// predicted class and the target are marked, and clicking a tile makes it the target.
import { decode } from "./codecs.js";
import { baseImage, draw, listen, overlay } from "./paint.js";

function render({ model, el }) {
  el.classList.add("xai-grid");

  function update() {
    const image = decode(model.get("image"));
    const maps = decode(model.get("maps"));
    const classes = model.get("classes");
    const labels = model.get("labels");
    const probabilities = model.get("probabilities");
    const vmaxes = model.get("vmaxes");
    const predicted = model.get("predicted");
    const target = model.get("target");
    const absValues = model.get("abs_values");
    el.replaceChildren();
    if (!image || !maps) return;
    const [, h, w] = image.shape;
    const base = baseImage(image, 0.55, model.get("grey"));
    classes.forEach((index, i) => {
      if (i >= maps.shape[0]) return;
      const tile = document.createElement("button");
      tile.type = "button";
      tile.className = "xai-tile" + (index === target ? " xai-target" : "") +
        (index === predicted ? " xai-predicted" : "");
      tile.dataset.index = String(index);
      tile.title = `show the map of class ${labels[i]}`;
      const canvas = document.createElement("canvas");
      draw(canvas, overlay(base, maps.data, i * h * w, h * w, vmaxes[i] || 0, absValues), h, w, 72);
      const caption = document.createElement("span");
      const p = probabilities[i] === undefined ? "" : ` · ${(100 * probabilities[i]).toFixed(1)}%`;
      caption.textContent = (index === predicted ? "★ " : "") + labels[i] + p;
      tile.append(canvas, caption);
      tile.addEventListener("click", () => {
        model.set("target", index);
        model.save_changes();
      });
      el.append(tile);
    });
  }

  return listen(model, ["image", "maps", "classes", "labels", "probabilities", "vmaxes",
                        "predicted", "target", "abs_values", "grey"], update);
}

export default { render };
