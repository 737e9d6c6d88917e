"""The contextual point mass of SPDL: a point that must pass through a gate in a wall to reach a goal.

Klink et al., "Self-Paced Deep Reinforcement Learning" (NeurIPS 2020) and "A Probabilistic
Interpretation of Self-Paced Learning with Applications to Reinforcement Learning" (JMLR 2021);
reference code ``psclklnk/spdl``, ``deep_sprl/environments/contextual_point_mass.py`` and
``contextual_point_mass_2d.py``, distributions from ``deep_sprl/experiments/point_mass_experiment.py``.

* State ``s = (x, x', y, y')``, reset to ``(0, 0, 3, 0)``; goal position ``(0, -3)``.
* Action ``a`` in [-10, 10]^2 (clipped). One environment step is 10 Euler sub-steps of dt = 0.01:
  ``v' = 1.5 a - friction v + N(0, 0.05^2)`` per axis, ``p' = v``; positions are clipped to [-4, 4]
  (the velocities are not).
* A wall at ``y = 0`` with a gate of width ``w`` centred at ``x = g``. A sub-step that goes from
  ``y >= 0`` to ``y < 0`` crosses the wall at ``x_c`` (linear interpolation between the two
  sub-step states); if ``|x_c - g| > w / 2`` it is a crash: the state becomes ``(x_c, 0, 0, 0)``, the
  remaining sub-steps are skipped and the episode terminates. Crossing upwards is not checked (as in
  the reference).
* Reward per step ``exp(-0.6 ||(x, y) - (0, -3)||)`` of the state after the step; ``info["success"]``
  when that distance is < 0.25 (an episode succeeds when its last state does).
* Horizon 100 steps (truncation). Observation ``(x, x', y, y', context)``: the context is visible
  (the reference's ``context_visible=True``), so do not also set ``PPOConfig.context_in_obs``.

Contexts: 3-D ``(gate_position, gate_width, friction)`` in [-4, 4] x [0.5, 8] x [0, 4], or 2-D
``(gate_position, gate_width)`` in [-4, 4] x [0.5, 8] with friction 0. The target distribution is a
narrow gate near ``x = 2.5``, the initial one wide gates around the centre (:data:`POINT_MASS_2D`,
:data:`POINT_MASS_3D`); the curriculum teachers of ``teachers/self_paced.py`` and
``teachers/currot.py`` look these up by task space.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.task_env import TaskEnv
from envs.task_space import TaskSpace

GOAL = (0.0, -3.0)
START = (0.0, 0.0, 3.0, 0.0)
SUCCESS_DISTANCE = 0.25


@dataclasses.dataclass(frozen=True)
class ContextDistributions:
    """SPDL's Gaussian target and initial context distributions of one task space (diagonal
    standard deviations) and the standard-deviation floor used while far from the target."""

    task_space: TaskSpace
    target_mean: tuple[float, ...]
    target_std: tuple[float, ...]
    initial_mean: tuple[float, ...]
    initial_std: tuple[float, ...]
    std_floor: tuple[float, ...]


POINT_MASS_3D_TASKS = TaskSpace.box(
    ["gate_position", "gate_width", "friction"], [-4.0, 0.5, 0.0], [4.0, 8.0, 4.0]
)
POINT_MASS_2D_TASKS = TaskSpace.box(["gate_position", "gate_width"], [-4.0, 0.5], [4.0, 8.0])

POINT_MASS_3D = ContextDistributions(
    POINT_MASS_3D_TASKS,
    target_mean=(2.5, 0.5, 0.0), target_std=(0.004, 0.00375, 0.002),
    initial_mean=(0.0, 4.25, 2.0), initial_std=(2.0, 1.875, 1.0),
    std_floor=(0.2, 0.1875, 0.1),
)
POINT_MASS_2D = ContextDistributions(
    POINT_MASS_2D_TASKS,
    target_mean=(2.5, 0.5), target_std=(0.004, 0.00375),
    initial_mean=(0.0, 4.25), initial_std=(2.0, 1.875),
    std_floor=(0.2, 0.1875),
)
KNOWN_CONTEXT_DISTRIBUTIONS = (POINT_MASS_2D, POINT_MASS_3D)


def sample_target(dists: ContextDistributions, key: jax.Array, n: int) -> jax.Array:
    """``n`` contexts of the target distribution, clipped to the task space (as the reference)."""
    mean = jnp.asarray(dists.target_mean, jnp.float32)
    std = jnp.asarray(dists.target_std, jnp.float32)
    x = mean + std * jax.random.normal(key, (n, mean.shape[0]))
    return dists.task_space.clip(x)


@struct.dataclass
class PointMassState(environment.EnvState):
    x: jax.Array
    vx: jax.Array
    y: jax.Array
    vy: jax.Array
    time: int


@struct.dataclass
class PointMassParams(environment.EnvParams):
    gate_position: float = 0.0
    gate_width: float = 2.0
    friction: float = 0.0
    max_steps_in_episode: int = 100


def point_mass_substep(state: jax.Array, action: jax.Array, noise: jax.Array, params: PointMassParams,
                       dt: float = 0.01) -> tuple[jax.Array, jax.Array]:
    """One Euler sub-step of ``state = [x, vx, y, vy]`` with ``noise[2]`` the velocity noise;
    returns ``(new_state, crash)``."""
    vel = state[jnp.array([1, 3])]
    acc = 1.5 * action - params.friction * vel + noise
    deriv = jnp.stack([vel[0], acc[0], vel[1], acc[1]])
    low = jnp.array([-4.0, -jnp.inf, -4.0, -jnp.inf])
    new = jnp.clip(state + dt * deriv, low, -low)
    crosses = (state[2] >= 0.0) & (new[2] < 0.0)
    alpha = (0.0 - state[2]) / jnp.where(crosses, new[2] - state[2], 1.0)
    x_crit = alpha * new[0] + (1.0 - alpha) * state[0]
    crash = crosses & (jnp.abs(x_crit - params.gate_position) > 0.5 * params.gate_width)
    new = jnp.where(crash, jnp.stack([x_crit, 0.0, 0.0, 0.0]), new)
    return new, crash


class PointMass(environment.Environment[PointMassState, PointMassParams]):
    """The contextual point mass (see the module docstring); gymnax 1.0 API, continuous actions."""

    def __init__(self, context_dim: int = 2, substeps: int = 10, noise_std: float = 0.05):
        super().__init__()
        if context_dim not in (2, 3):
            raise ValueError(f"PointMass: context_dim must be 2 or 3, got {context_dim}")
        self.context_dim = context_dim
        self.substeps = substeps
        self.noise_std = noise_std

    @property
    def default_params(self) -> PointMassParams:
        return PointMassParams()

    def step_env(self, key, state, action, params):
        action = jnp.clip(jnp.asarray(action, jnp.float32).reshape(2), -10.0, 10.0)
        noise = self.noise_std * jax.random.normal(key, (self.substeps, 2))
        s0 = jnp.stack([state.x, state.vx, state.y, state.vy]).astype(jnp.float32)

        def sub(carry, eps):
            s, crashed = carry
            new, crash = point_mass_substep(s, action, eps, params)
            s = jnp.where(crashed, s, new)  # after a crash the remaining sub-steps are skipped
            return (s, crashed | crash), None

        (s, crashed), _ = jax.lax.scan(sub, (s0, jnp.zeros((), bool)), noise, unroll=True)
        new_state = PointMassState(x=s[0], vx=s[1], y=s[2], vy=s[3], time=state.time + 1)
        dist = jnp.sqrt((s[0] - GOAL[0]) ** 2 + (s[2] - GOAL[1]) ** 2)
        reward = jnp.exp(-0.6 * dist)
        info = {"success": dist < SUCCESS_DISTANCE, "crash": crashed}
        return self.get_obs(new_state, params), new_state, reward, crashed, info

    def reset_env(self, key, params):
        del key
        z = jnp.zeros((), jnp.float32)
        state = PointMassState(x=z + START[0], vx=z + START[1], y=z + START[2], vy=z + START[3], time=0)
        return self.get_obs(state, params), state

    def context(self, params: PointMassParams) -> jax.Array:
        c = [params.gate_position, params.gate_width, params.friction][: self.context_dim]
        return jnp.stack([jnp.asarray(v, jnp.float32) for v in c])

    def get_obs(self, state, params=None, key=None):
        params = self.default_params if params is None else params
        s = jnp.stack([state.x, state.vx, state.y, state.vy]).astype(jnp.float32)
        return jnp.concatenate([s, self.context(params)])

    @property
    def name(self) -> str:
        return f"PointMass{self.context_dim}D"

    def action_space(self, params=None):
        return spaces.Box(-10.0, 10.0, (2,), jnp.float32)

    def observation_space(self, params):
        space = POINT_MASS_2D_TASKS if self.context_dim == 2 else POINT_MASS_3D_TASKS
        low = jnp.concatenate([jnp.array([-4.0, -jnp.inf, -4.0, -jnp.inf]), space.low_array])
        high = jnp.concatenate([jnp.array([4.0, jnp.inf, 4.0, jnp.inf]), space.high_array])
        return spaces.Box(low, high, (4 + self.context_dim,), jnp.float32)


def point_mass_params_for(task: jax.Array, base: PointMassParams | None = None) -> PointMassParams:
    """``PointMassParams`` for a 2-D ``[gate_position, gate_width]`` or 3-D ``[..., friction]`` task."""
    base = PointMassParams() if base is None else base
    friction = task[2] if task.shape[0] > 2 else 0.0
    return base.replace(gate_position=task[0], gate_width=task[1], friction=friction)


def point_mass_tasks(context_dim: int = 2, max_steps_in_episode: int = 100) -> TaskEnv:
    """The point mass as a task environment over the 2-D or 3-D context box.

    Score = undiscounted return / ``max_steps_in_episode`` (the reward is in (0, 1]); a task counts as
    mastered at a score of 0.5 (only used by the generic test-set evaluation; the point-mass
    experiment reports the reference's discounted return and success rate instead).
    """
    if context_dim not in (2, 3):
        raise ValueError(f"point_mass_tasks: context_dim must be 2 or 3, got {context_dim}")
    dists = POINT_MASS_2D if context_dim == 2 else POINT_MASS_3D
    base = PointMassParams(max_steps_in_episode=max_steps_in_episode)
    return TaskEnv(
        env=PointMass(context_dim),
        task_space=dists.task_space,
        params_for=lambda task: point_mass_params_for(task, base),
        default_task=dists.target_mean,
        return_range=(0.0, float(max_steps_in_episode)),
        mastery_score=0.5,
        name=f"point_mass_{context_dim}d",
    )
