import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from digits_jax import models, surgery


@pytest.fixture
def params():
    x = jnp.zeros((1, 28, 28, 1))
    dae = models.DAE().init(jax.random.PRNGKey(1), x)["params"]
    clf = models.Classifier().init(jax.random.PRNGKey(2), x)["params"]
    return jax.tree.map(np.asarray, dae), jax.tree.map(np.asarray, clf)


def test_graft_copies_the_encoder_and_keeps_the_head(params):
    dae, clf = params
    before = jax.tree.map(np.copy, clf)
    grafted = surgery.graft_encoder(clf, dae)
    for a, b in zip(
        jax.tree.leaves(grafted["encoder"]), jax.tree.leaves(dae["encoder"]), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(grafted["head"]["kernel"], clf["head"]["kernel"])
    # Pure: the inputs are unchanged.
    for a, b in zip(jax.tree.leaves(clf), jax.tree.leaves(before), strict=True):
        np.testing.assert_array_equal(a, b)


def _edit(tree, path, fn):
    tree = jax.tree.map(lambda x: x, tree)
    node = tree
    for key in path[:-1]:
        node = node[key]
    fn(node, path[-1])
    return tree


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda n, k: n.pop(k), "encoder/conv2/bias: missing in the donor"),
        (lambda n, k: n.update(extra=np.zeros(3)), "encoder/conv2/extra: unexpected in the donor"),
        (lambda n, k: n.update({k: np.zeros(16)}), "encoder/conv2/bias: shape (16,) where (32,)"),
        (
            lambda n, k: n.update({k: n[k].astype(np.float16)}),
            "encoder/conv2/bias: dtype float16 where float32",
        ),
    ],
)
def test_graft_names_the_first_mismatch(params, edit, message):
    dae, clf = params
    bad = _edit(dae, ["encoder", "conv2", "bias"], edit)
    with pytest.raises(surgery.GraftError, match=message.replace("(", r"\(").replace(")", r"\)")):
        surgery.graft_encoder(clf, bad)


def test_graft_without_encoder_subtree(params):
    dae, clf = params
    with pytest.raises(surgery.GraftError, match="no 'encoder' subtree"):
        surgery.graft_encoder(clf, {"decoder": dae["decoder"]})


def test_frozen_encoder_does_not_move(params):
    _, clf = params
    tx = surgery.freeze_encoder(optax.adam(0.1))
    state = tx.init(clf)
    grads = jax.tree.map(jnp.ones_like, clf)
    updates, _ = tx.update(grads, state, clf)
    new = optax.apply_updates(clf, updates)
    for a, b in zip(jax.tree.leaves(new["encoder"]), jax.tree.leaves(clf["encoder"]), strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(new["head"]["kernel"], clf["head"]["kernel"])
