"""Loading a workdir's classifier and applying it on either backend."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import serving_workdir

from digits_jax import augment, export, inference, models
from digits_jax.checkpoints import CheckpointError
from digits_jax.errors import DigitsJaxError


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    params = models.init_params(models.Classifier(), jax.random.PRNGKey(0))
    return serving_workdir(tmp_path_factory.mktemp("serving"), params)


def test_backends_agree(workdir):
    images = np.random.default_rng(0).random((40, 28, 28), np.float32)
    numpy_model = inference.load_classifier(workdir)
    jax_model = inference.load_classifier(workdir, backend="jax")
    assert numpy_model.backend == "numpy" and jax_model.backend == "jax"
    np.testing.assert_allclose(
        numpy_model.outputs(images), jax_model.outputs(images), atol=2e-5, rtol=1e-5
    )
    # A TTA view runs on JAX whichever backend was chosen.
    np.testing.assert_array_equal(numpy_model.logits(images, 2), jax_model.logits(images, 2))


def test_jax_backend_keeps_compiled_code_in_the_persistent_cache(workdir, tmp_path):
    code = (
        "import numpy as np; from digits_jax import inference; "
        f"m = inference.load_classifier({str(workdir)!r}, backend='jax'); "
        "m.outputs(np.zeros((3, 28, 28), np.float32))"
    )
    env = {**os.environ, "DIGITS_JAX_CACHE_DIR": str(tmp_path)}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)
    assert any((tmp_path / "jax").iterdir())


def test_max_tta_is_the_number_of_views():
    assert len(augment.TTA_VIEWS) == inference.MAX_TTA


def test_loading_errors(workdir, tmp_path):
    with pytest.raises(DigitsJaxError, match="unknown backend 'torch'"):
        inference.load_classifier(workdir, backend="torch")
    with pytest.raises(CheckpointError, match="model directory not found"):
        inference.load_classifier(tmp_path / "nope")
    params, _ = export.load(workdir)
    dae = serving_workdir(tmp_path / "dae", params, task="dae")
    with pytest.raises(CheckpointError, match="holds a dae run"):
        inference.load_classifier(dae)
    params["head"]["kernel"] = params["head"]["kernel"][:256]
    other = serving_workdir(tmp_path / "other", params)
    with pytest.raises(CheckpointError, match=r"not this classifier's architecture \(head/kernel"):
        inference.load_classifier(other)


def test_read_on_numpy_imports_no_jax(workdir):
    """The point of the NumPy backend: ``read`` of a photo starts no JAX at all."""
    sample = Path(inference.__file__).parent / "assets" / "sample_page.jpg"
    code = (
        "import sys; from digits_jax import cli; "
        f"code = cli.main(['read', {str(sample)!r}, '--model', {str(workdir)!r}]); "
        "heavy = {n.split('.')[0] for n in sys.modules} & {'jax', 'flax', 'orbax', 'optax'}; "
        "print(code, sorted(heavy), file=sys.stderr)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stderr.strip() == "0 []"
    assert [len(line) for line in out.stdout.split()] == [9, 7, 7]  # the page's three lines
