"""Fits the rational tanh of ``digits_jax.models.tanh`` and reports its float32 error.

    python scripts/fit_tanh.py              # degrees 4/4 in x^2, as models uses

tanh(x) = x * P(x^2) / Q(x^2) on [0, 9]: a linearised least-squares fit of P/Q to
tanh(x)/x in a Chebyshev basis, reweighted towards the largest relative errors
(Lawson) for a near-minimax fit. Prints the coefficients rounded to float32, the
largest error of ``models.rational_tanh`` with them (in float32, as training computes
it) and, for comparison, that of XLA's own ``jnp.tanh``.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np

from digits_jax import models

CLAMP = 9.0  # float32 tanh(9) rounds to 1


def fit(p_degree: int, q_degree: int, iterations: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients of P and Q (ascending powers of x^2, Q's constant 1)."""
    x = np.linspace(0.0, CLAMP, 40001)[1:]
    x = np.union1d(x, CLAMP * (1 - np.cos(np.linspace(0, np.pi / 2, 40001)[1:])))
    u = (x / CLAMP) ** 2
    target = np.tanh(x) / x
    t = 2 * u - 1
    vp = np.polynomial.chebyshev.chebvander(t, p_degree)
    vq = np.polynomial.chebyshev.chebvander(t, q_degree)[:, 1:]
    q_prev = np.ones_like(u)
    weights = np.full_like(u, 1 / len(u))
    best_error, best = np.inf, None
    for _ in range(iterations):
        scale = np.sqrt(weights) / (target * q_prev)
        a = np.concatenate([vp, -target[:, None] * vq], axis=1) * scale[:, None]
        coef = np.linalg.lstsq(a, target * scale, rcond=None)[0]
        q_prev = 1 + vq @ coef[p_degree + 1 :]
        rel = np.abs((vp @ coef[: p_degree + 1]) / q_prev - target) / target
        if rel.max() < best_error:
            best_error, best = rel.max(), coef
        weights = weights * rel
        weights /= weights.sum()
    in_u = np.polynomial.Polynomial([-1.0, 2.0])  # t as a polynomial in u

    def to_s(cheb: np.ndarray) -> np.ndarray:
        coef = np.polynomial.Polynomial(np.polynomial.chebyshev.cheb2poly(cheb))(in_u).coef
        return coef / CLAMP ** (2 * np.arange(len(coef)))

    p = to_s(best[: p_degree + 1])
    q = to_s(np.concatenate([[1.0], best[p_degree + 1 :]]))
    return p / q[0], q / q[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--p-degree", type=int, default=4)
    parser.add_argument("--q-degree", type=int, default=4)
    args = parser.parse_args()
    p, q = fit(args.p_degree, args.q_degree)
    print("P", [str(np.float32(c)) for c in p])
    print("Q", [str(np.float32(c)) for c in q])
    x = np.concatenate([np.linspace(-12, 12, 2_000_001), np.geomspace(1e-30, 12, 200_001)])
    x = x.astype(np.float32)
    exact = np.tanh(x.astype(np.float64))
    ours = jax.jit(lambda v: models.rational_tanh(v, tuple(p), tuple(q)))(x)
    print(f"float32 max error: {np.abs(np.asarray(ours, np.float64) - exact).max():.2e}")
    xla = np.asarray(jax.jit(jnp.tanh)(x), np.float64)
    print(f"XLA's jnp.tanh max error: {np.abs(xla - exact).max():.2e}")


if __name__ == "__main__":
    main()
