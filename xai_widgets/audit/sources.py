"""Dataset readers for audits: rows come out a range at a time, so memory stays flat.

``open_source`` accepts a torch ``Dataset`` (items ``(image, label)`` or ``image``), a
``DataLoader`` (not shuffled: its order is the row order), a numpy array or tensor
(N,C,H,W), (N,H,W) or (N,H,W,C) with optional ``labels=``, a folder of image files (sorted
paths; labels from class subfolders when every file sits in one) or an MNIST-format IDX
images file (its labels file is found next to it). ``read(ranges)`` yields one ``Rows`` per
(start, stop) range: float images (M,C,H,W) in 0..1, int64 labels (-1 unknown) and the
rows that could not be read, with the reason; those rows hold zeros.

>>> import numpy as np
>>> from xai_widgets.audit.sources import open_source
>>> source = open_source(np.zeros((5, 1, 28, 28), np.uint8), labels=[0, 1, 2, 3, 4])
>>> rows = next(source.read([(2, 4)]))
>>> len(source), rows.start, tuple(rows.images.shape), rows.labels.tolist(), rows.failed
(5, 2, (2, 1, 28, 28), [2, 3], {})
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler, Subset

from xai_widgets.adapter import to_chw
from xai_widgets.errors import InputError
from xai_widgets.zoo.idx import _DTYPES, load_idx

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm",
                  ".pgm"}


class Rows(NamedTuple):
    """Rows ``start``.. of a source: images (M,C,H,W), labels (M,), {row: reason}."""

    start: int
    images: torch.Tensor
    labels: np.ndarray
    failed: dict


def open_source(data: Any, labels: Any = None, channels: int | None = None):
    """The reader for ``data``; ``channels`` is what the model's first conv expects."""
    if isinstance(data, DataLoader):
        return LoaderSource(data, channels)
    if isinstance(data, (str, Path)):
        path = Path(data)
        if path.is_dir():
            return FolderSource(path, channels)
        if path.is_file():
            return IdxSource(path, labels)
        raise InputError(f"no dataset at {path}: pass a folder of images, an IDX images file, "
                         "a torch Dataset/DataLoader or an array (N,C,H,W)")
    if isinstance(data, (np.ndarray, torch.Tensor)):
        return ArraySource(data, labels)
    if isinstance(data, Dataset) or (hasattr(data, "__getitem__") and hasattr(data, "__len__")):
        return DatasetSource(data, channels)
    raise InputError(f"cannot read a dataset from {type(data).__name__}: pass a torch Dataset or "
                     "DataLoader, an array (N,C,H,W), a folder of images or an IDX file")


def _check_labels(labels: Any, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels)
    if labels.shape != (n,):
        raise InputError(f"labels has shape {labels.shape} for {n} images: pass one per image")
    return labels.astype(np.int64)


def _to_float(block: Any) -> tuple[torch.Tensor, dict]:
    """A (M,C,H,W) slice as float 0..1; rows with NaN/inf pixels are zeroed and failed."""
    tensor = block.detach().cpu() if isinstance(block, torch.Tensor) else torch.from_numpy(
        np.array(block, copy=True))
    tensor = tensor.float() / 255.0 if tensor.dtype == torch.uint8 else tensor.float()
    if tensor.ndim == 3:
        tensor = tensor[:, None]
    bad = ~torch.isfinite(tensor.flatten(1)).all(1)
    failed = {}
    if bool(bad.any()):
        tensor[bad] = 0
        failed = {int(i): "NaN or infinite pixels" for i in torch.nonzero(bad)[:, 0]}
    return tensor, failed


def _stack(items: list, start: int, channels: int | None) -> tuple[torch.Tensor, dict]:
    """Single images of any form (None = unreadable) as one batch; a row that cannot be
    converted or has another shape than the range's first image becomes a failed row."""
    first = items[0] if items else None
    if (isinstance(first, torch.Tensor) and first.ndim == 3 and first.is_floating_point()
            and all(isinstance(i, torch.Tensor) and i.shape == first.shape
                    and i.dtype == first.dtype for i in items)):  # the common case: one stack
        images, failed = _to_float(torch.stack(items))
        return images, {start + i: r for i, r in failed.items()}
    failed, tensors = {}, []
    for offset, item in enumerate(items):
        if isinstance(item, str):
            failed[start + offset] = item
            tensors.append(None)
            continue
        try:
            tensor = to_chw(item, channels)[0]
        except InputError as error:
            failed[start + offset] = str(error)
            tensor = None
        tensors.append(tensor)
    shapes = [t.shape for t in tensors if t is not None]
    if not shapes:
        return torch.zeros(len(items), channels or 1, 1, 1), failed
    shape = shapes[0]
    for offset, tensor in enumerate(tensors):
        if tensor is not None and tensor.shape != shape:
            failed[start + offset] = (f"shape {tuple(tensor.shape)} differs from "
                                      f"{tuple(shape)}: resize the images to one size")
            tensors[offset] = None
    return torch.stack([t if t is not None else torch.zeros(shape) for t in tensors]), failed


class ArraySource:
    """Rows of an in-memory array or tensor (the caller already holds it)."""

    kind = "array"

    def __init__(self, data: Any, labels: Any = None):
        if data.ndim == 3:
            data = data[:, None]
        if data.ndim != 4:
            raise InputError(f"an image array must be (N,C,H,W), (N,H,W,C) or (N,H,W); got "
                             f"shape {tuple(data.shape)}")
        if data.shape[1] not in (1, 3, 4) and data.shape[-1] in (1, 3, 4):
            data = data.permute(0, 3, 1, 2) if isinstance(data, torch.Tensor) else (
                data.transpose(0, 3, 1, 2))
        self.data = data
        self.labels = _check_labels(labels, len(data))

    def __len__(self) -> int:
        return len(self.data)

    def fingerprint(self) -> str:
        digest = hashlib.sha256(f"{tuple(self.data.shape)} {self.data.dtype}".encode())
        for start in range(0, len(self.data), 1024):
            block = self.data[start:start + 1024]
            block = block.detach().cpu().numpy() if isinstance(block, torch.Tensor) else block
            digest.update(np.ascontiguousarray(block).tobytes())
        if self.labels is not None:
            digest.update(self.labels.tobytes())
        return digest.hexdigest()

    def read(self, ranges: list[tuple[int, int]]) -> Iterator[Rows]:
        for start, stop in ranges:
            images, failed = _to_float(self.data[start:stop])
            labels = (self.labels[start:stop] if self.labels is not None
                      else np.full(stop - start, -1, np.int64))
            yield Rows(start, images, labels, {start + i: r for i, r in failed.items()})


def _split_item(item: Any) -> tuple[Any, int]:
    if isinstance(item, (tuple, list)) and len(item) == 2:
        label = item[1]
        try:
            return item[0], int(label)
        except (TypeError, ValueError):
            return item[0], -1
    return item, -1


class DatasetSource:
    """Rows of a map-style dataset, read item by item; a failing item is a failed row."""

    kind = "dataset"

    def __init__(self, dataset: Any, channels: int | None = None):
        try:
            self.n = len(dataset)
        except TypeError:
            raise InputError("the dataset has no len(): audits need a map-style Dataset "
                             "(or an array) so that rows can be resumed") from None
        self.dataset, self.channels = dataset, channels

    def __len__(self) -> int:
        return self.n

    def fingerprint(self) -> str:
        """Type, length and the first, middle and last items' bytes (not every item)."""
        digest = hashlib.sha256(f"{type(self.dataset).__qualname__} {self.n}".encode())
        for index in sorted({0, self.n // 2, self.n - 1} if self.n else set()):
            image, label = _split_item(self.dataset[index])
            try:
                digest.update(to_chw(image, self.channels)[0].numpy().tobytes())
            except InputError:
                digest.update(b"unreadable")
            digest.update(str(label).encode())
        return digest.hexdigest()

    def _item(self, index: int) -> tuple[Any, int]:
        try:
            return _split_item(self.dataset[index])
        except Exception as error:  # noqa: BLE001 - any failing item becomes a failed row
            return f"{type(error).__name__}: {error}", -1

    def read(self, ranges: list[tuple[int, int]]) -> Iterator[Rows]:
        for start, stop in ranges:
            items = [self._item(i) for i in range(start, stop)]
            images, failed = _stack([image for image, _ in items], start, self.channels)
            yield Rows(start, images, np.array([label for _, label in items], np.int64),
                       failed)


class LoaderSource(DatasetSource):
    """Rows of a DataLoader in its own batches and workers, from the first range asked."""

    kind = "dataloader"

    def __init__(self, loader: DataLoader, channels: int | None = None):
        if isinstance(loader.sampler, RandomSampler) or not isinstance(
                loader.sampler, SequentialSampler):
            raise InputError("the DataLoader shuffles (or uses a custom sampler), so its order "
                             "changes between runs and an audit could not be resumed: pass "
                             "DataLoader(dataset, shuffle=False) or the dataset itself")
        super().__init__(loader.dataset, channels)
        self.loader = loader

    def read(self, ranges: list[tuple[int, int]]) -> Iterator[Rows]:
        if not ranges:
            return
        first = ranges[0][0]
        loader = DataLoader(Subset(self.dataset, range(first, self.n)),
                            batch_size=self.loader.batch_size or 1,
                            num_workers=self.loader.num_workers,
                            collate_fn=self.loader.collate_fn)
        pending = list(ranges)
        block, block_labels, base = None, None, first  # rows base.. held, none before a range
        for batch in loader:
            image, label = (batch[0], batch[1]) if isinstance(batch, (tuple, list)) else (
                batch, None)
            label = (np.asarray(label, np.int64) if label is not None
                     else np.full(len(image), -1, np.int64))
            block = image if block is None else torch.cat([block, image])
            block_labels = label if block_labels is None else np.concatenate([block_labels, label])
            while pending and base + len(block) >= pending[0][1]:
                start, stop = pending.pop(0)
                tensor, failed = _to_float(block[start - base:stop - base])
                yield Rows(start, tensor, block_labels[start - base:stop - base],
                           {start + i: r for i, r in failed.items()})
            if not pending:
                return
            cut = max(0, min(pending[0][0] - base, len(block)))
            block, block_labels, base = block[cut:], block_labels[cut:], base + cut


class FolderSource(DatasetSource):
    """Image files under a folder (PIL), sorted by path; unreadable files are failed rows."""

    kind = "folder"

    def __init__(self, folder: Path, channels: int | None = None):
        self.folder = folder
        self.paths = sorted(p for p in folder.rglob("*")
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise InputError(f"{folder} has no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"
                             "; for MNIST-format IDX files pass the images file itself, e.g. "
                             "folder/train-images-idx3-ubyte.gz")
        parents = {p.parent for p in self.paths}
        self.classes = (sorted(p.name for p in parents)
                        if all(p.parent.parent == folder for p in self.paths) else None)
        self.mode = "L" if channels == 1 else "RGB"
        super().__init__(self, channels)

    def __getitem__(self, index: int):
        from PIL import Image

        path = self.paths[index]
        with Image.open(path) as image:
            pixels = image.convert(self.mode)
            pixels.load()
        label = self.classes.index(path.parent.name) if self.classes else -1
        return pixels, label

    def __len__(self) -> int:
        return len(self.paths)

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for path in self.paths:
            stat = path.stat()
            digest.update(f"{path.relative_to(self.folder)} {stat.st_size} "
                          f"{stat.st_mtime_ns}\n".encode())
        return digest.hexdigest()


class IdxSource:
    """An MNIST-format IDX images file, read a range at a time (memory-mapped, or streamed
    through gzip), with labels from the matching ``*labels-idx1-ubyte`` file or ``labels=``."""

    kind = "idx"

    def __init__(self, path: Path, labels: Any = None):
        self.path = path
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            head = handle.read(4)
            if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _DTYPES or head[3] < 2:
                raise InputError(f"{path} is not an IDX images file (magic {head.hex()})")
            dims = handle.read(4 * head[3])
        self.shape = tuple(int.from_bytes(dims[4 * i:4 * i + 4], "big") for i in range(head[3]))
        self.dtype = np.dtype(_DTYPES[head[2]]).newbyteorder(">")
        self.offset = 4 + 4 * head[3]
        self.row_bytes = int(np.prod(self.shape[1:])) * self.dtype.itemsize
        if labels is None:
            twin = path.with_name(path.name.replace("images-idx3", "labels-idx1"))
            labels = load_idx(twin) if twin != path and twin.exists() else None
        self.labels = _check_labels(labels, self.shape[0])
        self._handle = None

    def __len__(self) -> int:
        return self.shape[0]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_handle": None}  # file handles do not travel to workers

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        with open(self.path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        return digest.hexdigest()

    def _rows(self, start: int, stop: int) -> np.ndarray:
        if self._handle is None:
            self._handle = (gzip.open(self.path, "rb") if self.path.suffix == ".gz"
                            else open(self.path, "rb"))
        self._handle.seek(self.offset + start * self.row_bytes)
        raw = self._handle.read((stop - start) * self.row_bytes)
        if len(raw) != (stop - start) * self.row_bytes:
            raise InputError(f"{self.path} is truncated: rows {start}..{stop} are missing")
        return np.frombuffer(raw, self.dtype).reshape(stop - start, *self.shape[1:]).astype(
            self.dtype.newbyteorder("="))

    def read(self, ranges: list[tuple[int, int]]) -> Iterator[Rows]:
        for start, stop in ranges:
            block = self._rows(start, stop)
            images, failed = _to_float(block[:, None] if block.ndim == 3 else block)
            labels = (self.labels[start:stop] if self.labels is not None
                      else np.full(stop - start, -1, np.int64))
            yield Rows(start, images, labels, {start + i: r for i, r in failed.items()})
