// Groups of small heatmap tiles (a SpRAy cluster, or one method each); clicking a tile sets
// `selected` to its index. Each tile is scaled by its own vmax (or a shared one); `dim`
// darkens the images under the maps (0: images at full contrast, e.g. with no maps).
import { decode } from "./codecs.js";
import { baseImage, draw, overlay, listen } from "./paint.js";

function render({ model, el }) {
  el.classList.add("xai-tiles");

  function update() {
    const images = decode(model.get("images"));
    const maps = decode(model.get("maps"));
    const captions = model.get("captions");
    const groups = model.get("groups");
    const vmax = model.get("vmax");
    const selected = model.get("selected");
    const px = model.get("size");
    const dim = model.get("dim");
    el.replaceChildren();
    if (!images || !maps) return;
    const [, c, h, w] = images.shape;
    for (const group of groups) {
      const box = document.createElement("div");
      box.className = "xai-tile-group";
      const title = document.createElement("div");
      title.className = "xai-tile-group-title";
      title.textContent = group.title;
      const row = document.createElement("div");
      row.className = "xai-tile-row";
      for (const i of group.indices) {
        const tile = document.createElement("button");
        tile.type = "button";
        tile.className = "xai-tile" + (i === selected ? " xai-target" : "");
        tile.dataset.index = String(i);
        const image = { data: images.data.subarray(i * c * h * w, (i + 1) * c * h * w), shape: [c, h, w], dtype: images.dtype };
        const canvas = document.createElement("canvas");
        draw(canvas, overlay(baseImage(image, dim), maps.data, i * h * w, h * w, vmax[i], false), h, w, px);
        const caption = document.createElement("span");
        caption.textContent = captions[i] || "";
        tile.append(canvas, caption);
        tile.addEventListener("click", () => { model.set("selected", i); model.save_changes(); });
        row.append(tile);
      }
      box.append(title, row);
      el.append(box);
    }
    el.dataset.version = String(Number(el.dataset.version || 0) + 1);
  }

  return listen(model, ["images", "maps", "captions", "groups", "vmax", "selected", "size", "dim"],
                update);
}

export default { render };
