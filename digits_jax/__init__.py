"""digits-jax: handwritten-digit recognition with JAX and Flax."""

__version__ = "0.1.0"
