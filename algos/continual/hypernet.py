"""The hypernetwork shared by :mod:`algos.continual.hnet` and :mod:`algos.continual.hyperinterval`:
an MLP from a task embedding to the flattened weights of a target network, chunked as in von Oswald
et al. 2020 ("Continual learning with hypernetworks", ICLR; ``chrhenning/hypnettorch``,
``hnets/chunked_mlp_hnet.py``): the target's weight vector is cut into ``num_chunks`` chunks of
``chunk_size``; chunk i is ``h([e, c_i])`` with a learned chunk embedding c_i shared by every task, so
the hypernetwork can be smaller than its target. ``chunk_size=None`` is the plain hypernetwork (one
linear output per target weight, as HyperCRL's default ``hnet``).

Each generated weight is multiplied by a fixed (not trained) scale: 1/sqrt(fan_in) for a weight
matrix, 0.1 for a vector, so that the hypernetwork's roughly unit-variance initial outputs give target
weights of a standard initialisation's size (the intent of hypnettorch's hyperfan initialisation).
``output_scale=False`` leaves the outputs as they are (scale 1), as hypnettorch's plain ``HMLP`` and
HyperInterval's interval hypernetworks do: the scale also shrinks every optimiser step on the
generated weights, which slows learning where the hypernetwork's inputs are small (HyperInterval's
nested boxes, centres within eps / (2M)).

:func:`generate_interval` is interval bound propagation (IBP) in midpoint-radius form
(HyperInterval, Krukowski et al. 2024, ``gmum/HyperInterval``, ``IntervalNets/hmlp_ibp_wo_nesting.py``):
per layer mu' = W mu + b, r' = |W| r; a monotone activation maps [mu' - r', mu' + r'] to
[s(mu' - r'), s(mu' + r')].
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

ACTIVATIONS = {"relu": jax.nn.relu, "elu": jax.nn.elu}


@dataclasses.dataclass(frozen=True, eq=False)
class HnetSpec:
    """Static description of a hypernetwork and its target (see :func:`hnet_spec`)."""

    treedef: Any
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[Any, ...]
    total: int  # number of target weights
    emb_dim: int
    hidden: tuple[int, ...]
    chunk_size: int
    num_chunks: int
    chunk_emb_dim: int  # 0 without chunking
    activation: str
    scale: np.ndarray  # [num_chunks * chunk_size] fixed output scale (0 on the padding)


def hnet_spec(target_params: Any, emb_dim: int, hidden: tuple[int, ...] = (25, 25),
              chunk_size: int | None = None, chunk_emb_dim: int = 8, activation: str = "elu",
              output_scale: bool = True) -> HnetSpec:
    """The spec of a hypernetwork generating ``target_params`` (a pytree of arrays or shape structs)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown hypernetwork activation {activation!r}; known: {sorted(ACTIVATIONS)}")
    if emb_dim < 1 or any(h < 1 for h in hidden):
        raise ValueError(f"embedding and hidden sizes must be >= 1, got {emb_dim}, {hidden}")
    leaves, treedef = jax.tree.flatten(target_params)
    shapes = tuple(tuple(int(s) for s in leaf.shape) for leaf in leaves)
    total = sum(math.prod(s) for s in shapes)
    if chunk_size is None:
        chunk_size, chunk_emb_dim = total, 0
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    num_chunks = -(-total // chunk_size)
    scale = np.zeros(num_chunks * chunk_size, np.float32)
    offset = 0
    for s in shapes:
        n = math.prod(s)
        if not output_scale:
            scale[offset: offset + n] = 1.0
        else:
            scale[offset: offset + n] = 1.0 / math.sqrt(math.prod(s[:-1])) if len(s) >= 2 else 0.1
        offset += n
    return HnetSpec(treedef, shapes, tuple(leaf.dtype for leaf in leaves), total, emb_dim, tuple(hidden),
                    chunk_size, num_chunks, chunk_emb_dim if num_chunks > 1 else 0, activation, scale)


def init_hnet(key: jax.Array, spec: HnetSpec) -> dict:
    """Hypernetwork weights: LeCun-normal layers, zero biases, N(0, 1) chunk embeddings (none
    without chunking)."""
    sizes = (spec.emb_dim + spec.chunk_emb_dim, *spec.hidden, spec.chunk_size)
    keys = jax.random.split(key, len(sizes))
    layers = [
        {"w": jax.random.normal(k, (a, b)) / math.sqrt(a), "b": jnp.zeros((b,))}
        for k, a, b in zip(keys[:-1], sizes[:-1], sizes[1:])
    ]
    if not spec.chunk_emb_dim:
        return {"layers": layers}
    return {"layers": layers, "chunk_emb": jax.random.normal(keys[-1], (spec.num_chunks, spec.chunk_emb_dim))}


def _inputs(hnet: dict, spec: HnetSpec, emb: jax.Array) -> jax.Array:
    if emb.shape != (spec.emb_dim,):
        raise ValueError(f"task embedding of shape {emb.shape}, expected ({spec.emb_dim},)")
    e = jnp.broadcast_to(emb, (spec.num_chunks, spec.emb_dim))
    return jnp.concatenate([e, hnet["chunk_emb"]], axis=1) if spec.chunk_emb_dim else e


def generate(hnet: dict, spec: HnetSpec, emb: jax.Array) -> jax.Array:
    """The flat target weights ``[total]`` for task embedding ``emb [emb_dim]``."""
    act = ACTIVATIONS[spec.activation]
    h = _inputs(hnet, spec, emb)
    layers = hnet["layers"]
    for layer in layers[:-1]:
        h = act(h @ layer["w"] + layer["b"])
    out = (h @ layers[-1]["w"] + layers[-1]["b"]).reshape(-1) * spec.scale
    return out[: spec.total]


def generate_interval(hnet: dict, spec: HnetSpec, mid: jax.Array, rad: jax.Array) -> tuple[jax.Array, jax.Array]:
    """IBP of the embedding box ``[mid - rad, mid + rad]``: ``(midpoint [total], radius [total])`` of
    the box every generated weight lies in (chunk embeddings are points)."""
    act = ACTIVATIONS[spec.activation]
    mu = _inputs(hnet, spec, mid)
    r = jnp.broadcast_to(rad, (spec.num_chunks, spec.emb_dim))
    if spec.chunk_emb_dim:
        r = jnp.concatenate([r, jnp.zeros((spec.num_chunks, spec.chunk_emb_dim))], axis=1)
    layers = hnet["layers"]
    for i, layer in enumerate(layers):
        mu, r = mu @ layer["w"] + layer["b"], r @ jnp.abs(layer["w"])
        if i < len(layers) - 1:
            lo, hi = act(mu - r), act(mu + r)
            mu, r = (hi + lo) / 2, (hi - lo) / 2
    mu = mu.reshape(-1) * spec.scale
    r = r.reshape(-1) * spec.scale
    return mu[: spec.total], r[: spec.total]


def unflatten(spec: HnetSpec, flat: jax.Array) -> Any:
    """The target-network pytree from its flat weights."""
    leaves, offset = [], 0
    for shape, dtype in zip(spec.shapes, spec.dtypes):
        n = math.prod(shape)
        leaves.append(flat[offset: offset + n].reshape(shape).astype(dtype))
        offset += n
    return jax.tree.unflatten(spec.treedef, leaves)


def flatten(target_params: Any) -> jax.Array:
    """The flat weight vector of a target pytree (the inverse of :func:`unflatten`)."""
    return jnp.concatenate([jnp.ravel(x) for x in jax.tree.leaves(target_params)])
