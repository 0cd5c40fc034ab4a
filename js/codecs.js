// Arrays arrive from Python as {buffer: DataView, dtype, shape} (see xai_widgets/encoding.py).
const TYPES = { float32: Float32Array, uint8: Uint8Array };

export function decode(payload) {
  if (!payload || !payload.buffer || !payload.shape) return null;
  const Type = TYPES[payload.dtype];
  const view = payload.buffer;
  const data = new Type(view.buffer, view.byteOffset, view.byteLength / Type.BYTES_PER_ELEMENT);
  const size = payload.shape.reduce((a, b) => a * b, 1);
  return size === 0 ? null : { data, shape: payload.shape, dtype: payload.dtype };
}
