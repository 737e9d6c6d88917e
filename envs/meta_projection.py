"""Random-linear-projection meta-RL over a set of gymnax environments (Lu et al., "Structured State Space
Models for In-Context Reinforcement Learning", NeurIPS 2023, Algorithm 1 and the DMControl experiment;
the code's small counterpart is ``luchris429/popjaxrl``, ``envs/environments/meta_cartpole.py``).

Each *meta-episode* draws, at the meta-reset,

* one environment ``i`` of the set, uniformly;
* an observation projection ``M_o`` (``[O, d_i]``; O = ``obs_dim``, 12 in the paper);
* an action projection ``M_a`` (``[k_i, A]``; A = ``action_dim``, 2 in the paper; ``k_i`` the
  environment's action size: ``n`` for ``Discrete(n)``, the vector size for a ``Box``);

then runs ``trials`` trials (inner episodes) of environment ``i`` seen through those projections. No
task label is shown. ``trials=1`` is the paper's Algorithm 1 (a new task and new projections at every
termination); ``trials > 1`` is popjaxrl's meta-cartpole scheme (the agent can improve across trials
of one task). The meta-episode terminates at the step that ends the ``trials``-th trial.

Projections (the paper does not say how its random matrices are drawn):

* ``projection="orthogonal"`` (default): ``M`` has orthonormal columns (or rows, whichever is the
  smaller side), as Flax's ``orthogonal`` initializer, which popjaxrl uses for its projection, draws
  them; ``projection_scale`` multiplies it (default 1.0; popjaxrl's meta-cartpole uses √2). With
  O >= d_i the observation projection keeps norms: no direction of the observation is lost.
* ``projection="gaussian"``: i.i.d. ``N(0, 1 / in_dim)`` entries (``in_dim`` = d_i for ``M_o``, A for
  ``M_a``), times ``projection_scale``.

Agent action: a vector in ``Box(-1, 1, (A,))``, clipped to it, then ``u = M_a · a`` (``k_i`` values):

* ``Discrete(n)`` environment: the environment receives ``argmax(u)`` (a linear "policy over logits":
  the projection splits the agent's action plane into n cones; for orthogonal ``M_a`` every action
  has a cone with probability one).
* ``Box`` environment: ``u`` clipped to ``[-1, 1]`` and mapped affinely onto the environment's bounds,
  ``low + (clip(u, -1, 1) + 1) / 2 · (high - low)`` (Pendulum: torque ``2 · clip(u, -1, 1)``).

Observation (float32, ``O + 3``)::

    [ M_o · normalise(o)  (O),   reward,   trial-done,   first ]

``normalise(o) = (o - loc_i) / scale_i`` with per-environment constants (:data:`ENV_SPECS`: the
observation bounds where they are finite, a typical range for CartPole's velocities) so that no
coordinate is invisible after projection (MountainCar's velocity is at most 0.07);
``normalize_obs=False`` projects the raw observation. ``reward`` is the reward of the step that produced
the observation (the scaled one, see below); ``trial-done`` is 1.0 when that step ended a trial, and the
observation is then the first observation of the next trial; ``first`` is 1.0 only at the meta-reset
observation (reward and trial-done are 0 there, as the paper's zeros at reset).

Rewards and scores: each environment has a return range ``(lo, hi)`` (:data:`ENV_SPECS`) for one trial;
``trial_score = clip((R - lo) / (hi - lo), 0, 1)`` makes trial returns comparable across environments,
``hi`` being the best return (CartPole) or the gym "solved" threshold, ``lo`` the return of a trial that
never succeeds. With ``scale_rewards=True`` (default) the wrapper's reward is the environment's reward
times ``1 / (hi - lo)`` (no offset: an offset per step would change what ending a trial early is worth).

Trials: each trial lasts at most the environment's ``max_steps`` (:data:`ENV_SPECS`, 200 for every
environment here; ``max_steps=`` overrides it for all) and ends on the environment's termination or that
limit. ``same_initial_state=True`` restarts every trial from the state drawn at the meta-reset
(popjaxrl's meta-cartpole); the default ``False`` draws a fresh initial state for each trial of the same
environment and projections.

State: every environment of the set keeps its own state in :class:`MetaProjectionState` (a tuple, one
pytree per environment); a step ``lax.switch``-es on the drawn index, so only that environment is
stepped and only its entry changes (under ``vmap`` every branch is computed and the chosen one
selected, which leaves the others unchanged too). All shapes are static: observations are padded to the
largest observation size of the set, ``M_o`` is ``[O, d_max]`` with zero columns past ``d_i``, ``M_a`` is
``[k_max, A]`` with zero rows past ``k_i``.

``info`` of each step: ``env_index`` (position in the split's list), ``trial`` (0-based index of the
trial this step belongs to), ``trial_done``, ``trial_return`` (that trial's return including this step,
in the wrapper's reward units), ``trial_raw_return`` (in the environment's units), ``trial_score``
(in [0, 1]), ``trial_length``; trial values are final where ``trial_done``. ``is_truncated`` is always
false: a meta-episode has at most ``trials · max(max_steps)`` steps.

Deviations from the paper: gymnax classic-control environments instead of DMControl; the splits below
instead of the paper's 6 train / 5 held-out DMControl tasks; the projection distributions above (not
stated in the paper); per-environment observation normalisation and reward scaling (the paper's
DMControl rewards are already in [0, 1] per step); the agent's action clipped to [-1, 1] before it is
projected; ``trials`` trials per task (paper: 1).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """How one gymnax environment enters the meta-RL set.

    Attributes:
      env_id: the ``gymnax.make`` name.
      max_steps: steps per trial (the inner ``max_steps_in_episode``).
      return_range: ``(lo, hi)`` of a trial's return for ``trial_score`` and the reward scale.
      obs_loc, obs_scale: ``normalise(o) = (o - obs_loc) / obs_scale``.
    """

    env_id: str
    max_steps: int
    return_range: tuple[float, float]
    obs_loc: tuple[float, ...]
    obs_scale: tuple[float, ...]


ENV_SPECS: dict[str, EnvSpec] = {
    # reward 1 per step; 200 steps as POPGym's / popjaxrl's cart-pole; best return 200.
    # x, theta: termination bounds; velocities: a typical range (unbounded).
    "CartPole-v1": EnvSpec("CartPole-v1", 200, (0.0, 200.0), (0.0, 0.0, 0.0, 0.0), (2.4, 2.0, 0.21, 2.0)),
    # reward -1 per step until the tip swings up; gym solved threshold -100; never succeeding: -200.
    "Acrobot-v1": EnvSpec(
        "Acrobot-v1", 200, (-200.0, -100.0), (0.0,) * 6,
        (1.0, 1.0, 1.0, 1.0, float(4 * np.pi), float(9 * np.pi)),
    ),
    # reward -1 per step until the goal; gym solved threshold -110; never succeeding: -200.
    "MountainCar-v0": EnvSpec("MountainCar-v0", 200, (-200.0, -110.0), (-0.3, 0.0), (0.9, 0.07)),
    # +100 at the goal minus 0.1 a^2 per step; gym solved threshold 90; never succeeding: about 0.
    "MountainCarContinuous-v0": EnvSpec(
        "MountainCarContinuous-v0", 200, (0.0, 90.0), (-0.3, 0.0), (0.9, 0.07)
    ),
    # -(angle^2 + 0.1 speed^2 + 0.001 u^2) per step, 200 steps; a random policy gets about -1200, a
    # good swing-up about -150 (no gym threshold).
    "Pendulum-v1": EnvSpec("Pendulum-v1", 200, (-1500.0, -150.0), (0.0, 0.0, 0.0), (1.0, 1.0, 8.0)),
}

SPLITS: dict[str, list[str]] = {
    # two discrete, two continuous-action environments to train on ...
    "classic_train": ["CartPole-v1", "Acrobot-v1", "MountainCarContinuous-v0", "Pendulum-v1"],
    # ... and a held-out one whose dynamics resemble a training environment (MountainCarContinuous) but
    # whose action space (Discrete(3)) and reward differ, evaluated on fresh projections.
    "classic_heldout": ["MountainCar-v0"],
    "classic_all": ["CartPole-v1", "Acrobot-v1", "MountainCarContinuous-v0", "Pendulum-v1", "MountainCar-v0"],
}


@struct.dataclass
class MetaProjectionParams(environment.EnvParams):
    """Everything the wrapper needs is static (in the object); this only satisfies gymnax."""

    max_steps_in_episode: int = 1_000_000


@struct.dataclass
class MetaProjectionState:
    env_states: tuple  # one gymnax state per environment of the set; only env_states[env_index] is live
    init_states: tuple  # the states drawn at the meta-reset (restart points with same_initial_state)
    init_obs: jax.Array  # [d_max] float32: the drawn environment's first observation (raw, padded)
    env_index: jax.Array  # [] int32
    obs_proj: jax.Array  # [O, d_max] float32, zero columns past the drawn environment's obs size
    act_proj: jax.Array  # [k_max, A] float32, zero rows past the drawn environment's action size
    trial: jax.Array  # [] int32: running trial, 0 .. trials-1
    trial_return: jax.Array  # [] float32, wrapper's reward units
    trial_raw_return: jax.Array  # [] float32, the environment's units
    trial_length: jax.Array  # [] int32
    time: jax.Array  # [] int32: steps of the meta-episode


def _strong(tree: Any) -> Any:
    """Every leaf as a committed (not weakly typed) array, so ``lax.switch`` branches agree."""
    return jax.tree.map(lambda x: jnp.asarray(x, dtype=jnp.asarray(x).dtype), tree)


def _like(new: Any, old: Any) -> Any:
    """``new`` with the dtypes and shapes of ``old`` (gymnax steps may promote or reshape leaves)."""
    return jax.tree.map(lambda n, o: jnp.reshape(jnp.asarray(n, o.dtype), o.shape), new, old)


def _random_matrix(gauss: jax.Array, kind: str, scale: float) -> jax.Array:
    """A ``[rows, cols]`` projection (applied as ``M @ x``, ``x`` of size ``cols``) from i.i.d. standard
    normals ``gauss`` of that shape.

    ``"orthogonal"`` is the algorithm of Flax's ``orthogonal`` initializer (QR of a Gaussian matrix, the
    columns of Q times the signs of R's diagonal: Haar-distributed), giving orthonormal columns when
    ``rows >= cols`` and orthonormal rows otherwise; ``"gaussian"`` is ``N(0, 1 / cols)`` entries.
    """
    rows, cols = gauss.shape
    if kind == "gaussian":
        return scale * gauss / np.sqrt(cols)
    tall = gauss if rows >= cols else gauss.T
    q, r = jnp.linalg.qr(tall)
    q = q * jnp.sign(jnp.diagonal(r))[None, :]
    return scale * (q if rows >= cols else q.T)


class MetaProjection(environment.Environment):
    """The meta-RL environment over ``env_ids`` (see the module docstring)."""

    def __init__(
        self,
        env_ids: Sequence[str],
        trials: int = 4,
        obs_dim: int = 12,
        action_dim: int = 2,
        projection: str = "orthogonal",
        projection_scale: float = 1.0,
        normalize_obs: bool = True,
        scale_rewards: bool = True,
        same_initial_state: bool = False,
        max_steps: int | None = None,
        name: str | None = None,
    ):
        super().__init__()
        env_ids = list(env_ids)
        if not env_ids:
            raise ValueError("MetaProjection needs at least one environment id")
        unknown = [e for e in env_ids if e not in ENV_SPECS]
        if unknown:
            raise ValueError(f"unknown environment id(s) {unknown} for MetaProjection; known: {sorted(ENV_SPECS)}")
        if projection not in ("orthogonal", "gaussian"):
            raise ValueError(f"projection must be 'orthogonal' or 'gaussian', got {projection!r}")
        if trials < 1 or obs_dim < 1 or action_dim < 1 or (max_steps is not None and max_steps < 1):
            raise ValueError("trials, obs_dim, action_dim and max_steps must be >= 1")
        self.env_ids = env_ids
        self.trials = int(trials)
        self.obs_dim = int(obs_dim)
        self.action_dim = int(action_dim)
        self.projection = projection
        self.projection_scale = float(projection_scale)
        self.normalize_obs = bool(normalize_obs)
        self.scale_rewards = bool(scale_rewards)
        self.same_initial_state = bool(same_initial_state)
        self._name = name or "MetaProjection(" + ",".join(env_ids) + ")"

        self.specs = [ENV_SPECS[e] for e in env_ids]
        self.envs, self.env_params = [], []
        self.obs_sizes, self.action_sizes, self.discrete = [], [], []
        self.action_low, self.action_high = [], []
        for spec in self.specs:
            env, params = gymnax.make(spec.env_id)
            params = params.replace(max_steps_in_episode=int(max_steps or spec.max_steps))
            self.envs.append(env)
            self.env_params.append(params)
            obs_size = int(np.prod(env.observation_space(params).shape))
            if len(spec.obs_loc) != obs_size or len(spec.obs_scale) != obs_size:
                raise ValueError(f"ENV_SPECS[{spec.env_id!r}]: obs_loc/obs_scale need {obs_size} values")
            self.obs_sizes.append(obs_size)
            space = env.action_space(params)
            if isinstance(space, spaces.Discrete):
                self.discrete.append(True)
                self.action_sizes.append(int(space.n))
                self.action_low.append(None)
                self.action_high.append(None)
            elif isinstance(space, spaces.Box):
                shape = tuple(space.shape)
                self.discrete.append(False)
                self.action_sizes.append(int(np.prod(shape)))
                self.action_low.append(jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), shape))
                self.action_high.append(jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), shape))
            else:
                raise ValueError(f"{spec.env_id}: action space {type(space).__name__} is not Discrete or Box")
        self.max_obs = max(self.obs_sizes)
        self.max_act = max(self.action_sizes)
        self.max_trial_steps = max(int(p.max_steps_in_episode) for p in self.env_params)
        self.reward_scales = [
            (1.0 / (s.return_range[1] - s.return_range[0])) if self.scale_rewards else 1.0 for s in self.specs
        ]
        self.obs_shape = (self.obs_dim + 3,)

    # -- pieces -----------------------------------------------------------------------------------
    @property
    def num_envs(self) -> int:
        return len(self.envs)

    def _pad_obs(self, i: int, obs: jax.Array) -> jax.Array:
        """Environment ``i``'s observation, flattened, normalised (if on) and zero-padded to ``d_max``."""
        obs = jnp.reshape(jnp.asarray(obs, jnp.float32), (-1,))
        if self.normalize_obs:
            spec = self.specs[i]
            obs = (obs - jnp.asarray(spec.obs_loc, jnp.float32)) / jnp.asarray(spec.obs_scale, jnp.float32)
        return jnp.pad(obs, (0, self.max_obs - self.obs_sizes[i]))

    def env_action(self, i: int, action: jax.Array, act_proj: jax.Array) -> jax.Array:
        """What environment ``i`` receives for the agent's ``action`` under ``act_proj``."""
        a = jnp.clip(jnp.reshape(jnp.asarray(action, jnp.float32), (self.action_dim,)), -1.0, 1.0)
        u = (act_proj @ a)[: self.action_sizes[i]]
        if self.discrete[i]:
            return jnp.argmax(u).astype(jnp.int32)
        low, high = self.action_low[i], self.action_high[i]
        u = jnp.reshape(jnp.clip(u, -1.0, 1.0), low.shape)
        return low + (u + 1.0) * 0.5 * (high - low)

    def _draw_projections(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``[n, O, d_max]`` and ``[n, k_max, A]``: one padded pair per environment of the set."""
        # one Gaussian draw for every matrix (each jax.random call adds a threefry graph to compile)
        shapes = [((self.obs_dim, d), (k, self.action_dim)) for d, k in zip(self.obs_sizes, self.action_sizes)]
        sizes = [r * c for pair in shapes for (r, c) in pair]
        flat = jax.random.normal(key, (sum(sizes),), jnp.float32)
        parts = jnp.split(flat, np.cumsum(sizes)[:-1])
        obs_p, act_p = [], []
        for i, (obs_shape, act_shape) in enumerate(shapes):
            g_o, g_a = parts[2 * i].reshape(obs_shape), parts[2 * i + 1].reshape(act_shape)
            m_o = _random_matrix(g_o, self.projection, self.projection_scale)
            m_a = _random_matrix(g_a, self.projection, self.projection_scale)
            obs_p.append(jnp.pad(m_o, ((0, 0), (0, self.max_obs - self.obs_sizes[i]))))
            act_p.append(jnp.pad(m_a, ((0, self.max_act - self.action_sizes[i]), (0, 0))))
        return jnp.stack(obs_p), jnp.stack(act_p)

    def _obs(self, raw_obs: jax.Array, state: MetaProjectionState, reward: jax.Array,
             trial_done: jax.Array, first: jax.Array) -> jax.Array:
        return jnp.concatenate([
            state.obs_proj @ raw_obs,
            jnp.reshape(reward, (1,)).astype(jnp.float32),
            jnp.reshape(trial_done, (1,)).astype(jnp.float32),
            jnp.reshape(first, (1,)).astype(jnp.float32),
        ])

    def _branch(self, i: int):
        env, params = self.envs[i], self.env_params[i]

        def step_i(key_step, key_restart, env_states, init_states, init_obs, action, act_proj):
            obs_st, st, reward, terminated, _ = env.step_env(
                key_step, env_states[i], self.env_action(i, action, act_proj), params
            )
            st = _like(st, env_states[i])
            trial_done = jnp.logical_or(terminated, env.is_truncated(st, params))
            obs_st = self._pad_obs(i, obs_st)
            if self.same_initial_state:
                obs_re, st_re = init_obs, init_states[i]
            else:
                obs_re, st_re = env.reset_env(key_restart, params)
                obs_re, st_re = self._pad_obs(i, obs_re), _like(st_re, env_states[i])
            st = jax.tree.map(lambda r, s: jax.lax.select(trial_done, r, s), st_re, st)
            obs = jnp.where(trial_done, obs_re, obs_st)
            new_states = tuple(st if j == i else s for j, s in enumerate(env_states))
            raw_reward = jnp.reshape(jnp.asarray(reward, jnp.float32), ())
            return new_states, obs, raw_reward, raw_reward * self.reward_scales[i], jnp.asarray(trial_done)

        return step_i

    # -- gymnax API -------------------------------------------------------------------------------
    @property
    def default_params(self) -> MetaProjectionParams:
        return MetaProjectionParams()

    def reset_env(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, MetaProjectionState]:
        key_env, key_proj, key_reset = jax.random.split(key, 3)
        env_index = jax.random.randint(key_env, (), 0, self.num_envs, jnp.int32)
        obs_all, act_all = self._draw_projections(key_proj)
        states, first_obs = [], []
        for i, k in enumerate(jax.random.split(key_reset, self.num_envs)):
            obs_i, st_i = self.envs[i].reset_env(k, self.env_params[i])
            states.append(_strong(st_i))
            first_obs.append(self._pad_obs(i, obs_i))
        states = tuple(states)
        init_obs = jnp.stack(first_obs)[env_index]
        zero_f, zero_i = jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32)
        state = MetaProjectionState(
            env_states=states,
            init_states=states,
            init_obs=init_obs,
            env_index=env_index,
            obs_proj=obs_all[env_index],
            act_proj=act_all[env_index],
            trial=zero_i,
            trial_return=zero_f,
            trial_raw_return=zero_f,
            trial_length=zero_i,
            time=zero_i,
        )
        return self._obs(init_obs, state, zero_f, zero_f, jnp.ones(())), state

    def step_env(
        self, key: jax.Array, state: MetaProjectionState, action: Any, params: Any = None
    ) -> tuple[jax.Array, MetaProjectionState, jax.Array, jax.Array, dict]:
        branches = [self._branch(i) for i in range(self.num_envs)]
        key_step, key_restart = jax.random.split(key)
        env_states, raw_obs, raw_reward, reward, trial_done = jax.lax.switch(
            state.env_index, branches,
            key_step, key_restart, state.env_states, state.init_states, state.init_obs, action, state.act_proj,
        )
        spec_lo = jnp.asarray([s.return_range[0] for s in self.specs], jnp.float32)[state.env_index]
        spec_hi = jnp.asarray([s.return_range[1] for s in self.specs], jnp.float32)[state.env_index]
        trial_return = state.trial_return + reward
        trial_raw_return = state.trial_raw_return + raw_reward
        trial_length = state.trial_length + 1
        next_trial = state.trial + trial_done.astype(jnp.int32)
        meta_done = next_trial >= self.trials
        new_state = state.replace(
            env_states=env_states,
            trial=next_trial,
            trial_return=jnp.where(trial_done, 0.0, trial_return),
            trial_raw_return=jnp.where(trial_done, 0.0, trial_raw_return),
            trial_length=jnp.where(trial_done, 0, trial_length),
            time=state.time + 1,
        )
        obs = self._obs(raw_obs, new_state, reward, trial_done, jnp.zeros(()))
        info = {
            "env_index": state.env_index,
            "trial": state.trial,
            "trial_done": trial_done,
            "trial_return": trial_return,
            "trial_raw_return": trial_raw_return,
            "trial_score": jnp.clip((trial_raw_return - spec_lo) / (spec_hi - spec_lo), 0.0, 1.0),
            "trial_length": trial_length,
            "discount": 1.0 - meta_done.astype(jnp.float32),
        }
        return jax.lax.stop_gradient(obs), jax.lax.stop_gradient(new_state), reward, meta_done, info

    def is_truncated(self, state: Any, params: Any) -> jax.Array:
        return jnp.asarray(False)

    def observation_space(self, params: Any = None) -> spaces.Box:
        inf = jnp.full((self.obs_dim + 1,), jnp.inf, jnp.float32)  # projected obs and reward: unbounded
        low = jnp.concatenate([-inf, jnp.zeros((2,), jnp.float32)])
        high = jnp.concatenate([inf, jnp.ones((2,), jnp.float32)])
        return spaces.Box(low, high, self.obs_shape, jnp.float32)

    def action_space(self, params: Any = None) -> spaces.Box:
        return spaces.Box(-1.0, 1.0, (self.action_dim,), jnp.float32)

    @property
    def num_actions(self) -> int:
        return self.action_dim

    @property
    def name(self) -> str:
        return self._name


def make_meta_projection(
    split: str | Sequence[str],
    trials: int = 4,
    obs_dim: int = 12,
    action_dim: int = 2,
    **kwargs: Any,
) -> MetaProjection:
    """The meta-RL environment over a named split of :data:`SPLITS` (or a list of gymnax env ids).

    ``trials`` per meta-episode (default 4, a choice of this module; 1 is the paper's Algorithm 1, 16
    popjaxrl's meta-cartpole); ``obs_dim`` O and ``action_dim`` A as in the paper (12 and 2).

    ``kwargs`` go to :class:`MetaProjection` (``projection``, ``projection_scale``, ``normalize_obs``,
    ``scale_rewards``, ``same_initial_state``, ``max_steps``). Unknown split names and environment ids
    raise ``ValueError``.
    """
    if isinstance(split, str):
        if split not in SPLITS:
            raise ValueError(f"unknown meta-projection split {split!r}; known: {sorted(SPLITS)}")
        env_ids, name = SPLITS[split], f"MetaProjection[{split}]"
    else:
        env_ids, name = list(split), None
    kwargs.setdefault("name", name)
    return MetaProjection(env_ids, trials=trials, obs_dim=obs_dim, action_dim=action_dim, **kwargs)
