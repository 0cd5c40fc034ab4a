// Painting shared by the views: the image (greyscale or colour), the diverging overlay, the
// colour bar. Convention: red = evidence for the target, blue = against, transparent near zero.
export const RED = [214, 39, 40];
export const BLUE = [33, 102, 172];

function imageRange(image) {
  if (image.dtype === "uint8") return [0, 255];
  let lo = 0, hi = 1;
  for (const v of image.data) { if (v < lo) lo = v; if (v > hi) hi = v; }
  return [lo, hi];
}

// Base image pixels as RGBA (Uint8ClampedArray), dimmed so the overlay stays readable;
// `grey` draws an RGB image as greyscale so red content is not mistaken for red evidence.
export function baseImage(image, dim = 0.55, grey = false) {
  const [c, h, w] = image.shape;
  const [lo, hi] = imageRange(image);
  const out = new Uint8ClampedArray(h * w * 4);
  const scale = (v) => 255 * (1 - dim) * ((v - lo) / (hi - lo || 1)) + 20;
  for (let i = 0; i < h * w; i++) {
    if (c === 3 && grey) {
      const y = 0.299 * image.data[i] + 0.587 * image.data[h * w + i] + 0.114 * image.data[2 * h * w + i];
      out[4 * i] = out[4 * i + 1] = out[4 * i + 2] = scale(y);
    } else {
      for (let k = 0; k < 3; k++) out[4 * i + k] = scale(image.data[(c === 3 ? k : 0) * h * w + i]);
    }
    out[4 * i + 3] = 255;
  }
  return out;
}

// Blend one attribution map (offset into a (n,H,W) array) over the base pixels.
export function overlay(base, map, offset, size, vmax, absValues) {
  const out = new Uint8ClampedArray(base);
  const scale = vmax > 0 ? 1 / vmax : 0;
  for (let i = 0; i < size; i++) {
    let v = map[offset + i] * scale;
    if (absValues) v = Math.abs(v);
    const a = Math.min(1, Math.abs(v)) ** 0.75 * 0.92;
    const colour = v >= 0 ? RED : BLUE;
    for (let k = 0; k < 3; k++) out[4 * i + k] = out[4 * i + k] * (1 - a) + colour[k] * a;
  }
  return out;
}

// Draw RGBA pixels of size (h, w) into a canvas `px` wide (its CSS width shrinks with the
// container: max-width 100%), crisp for small images (no smoothing when enlarged).
export function draw(canvas, pixels, h, w, px) {
  const scratch = document.createElement("canvas");
  scratch.width = w; scratch.height = h;
  scratch.getContext("2d").putImageData(new ImageData(pixels, w, h), 0, 0);
  canvas.width = px; canvas.height = Math.round(px * h / w);
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = px < w;
  ctx.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}

export function colourBar(canvas, absValues, height) {
  canvas.width = 14; canvas.height = height;
  const ctx = canvas.getContext("2d");
  for (let y = 0; y < height; y++) {
    const t = 1 - y / (height - 1);          // 1 at the top
    const v = absValues ? t : 2 * t - 1;     // value in units of vmax
    const a = Math.min(1, Math.abs(v)) ** 0.75 * 0.92;
    const colour = v >= 0 ? RED : BLUE;
    const mix = colour.map((c) => Math.round(255 * (1 - a) + c * a));
    ctx.fillStyle = `rgb(${mix.join(",")})`;
    ctx.fillRect(0, y, 14, 1);
  }
}

export function formatValue(v) {
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 100 || a < 0.01 ? v.toExponential(1) : v.toPrecision(2);
}

// Redraw when any of `names` changes; returns the cleanup that removes the listeners.
export function listen(model, names, update) {
  for (const name of names) model.on(`change:${name}`, update);
  update();
  return () => { for (const name of names) model.off(`change:${name}`, update); };
}
