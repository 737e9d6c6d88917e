"""Stump Track: a JAX analogue of the Stump Tracks of Portelas et al. (2019).

A point runner must cross a 30 m track of stumps; the task is ``[stump_height, stump_spacing]`` in the
paper's box [0, 3] x [0, 6] (``STUMP_TRACK_TASKS``). Built for PPO on a CPU in a few million steps.

Dynamics (every number is a field of :class:`StumpTrackParams`; defaults in brackets)
--------------------------------------------------------------------------------------

* Steps of ``dt`` [0.1 s]; the episode is cut (truncated) after ``max_steps_in_episode`` [130].
* Actions (4): ``BACK`` (speed -1.5 m/s), ``WALK`` (1.5 m/s), ``RUN`` (3 m/s), ``JUMP`` (vertical
  impulse 8 m/s at the current speed). They act on the ground only: flight is ballistic
  (``air_control=True`` lets BACK/WALK/RUN set the speed in the air too).
* Flight follows the exact parabola ``y(t) = y + vy t - g t^2 / 2`` (g = 16), so the apex is
  ``v^2 / 2g`` = 2.0 m at 0.5 s (the 5th step) exactly, a jump lasts 1 s (10 steps) and spans
  3.0 m running, 1.5 m walking; the landing is placed at the root inside its step.
* Stumps: width 1.5 m, leading edges at ``3 + k (1.5 + spacing)``, every stump that ends before the
  finish line; heights ``max(N(stump_height, 0.1^2), 0)`` drawn per stump and per episode (TDRL
  passes ``stump_height=[h, 0.1]``), so a track is fixed within an episode but not across episodes.
* Collisions are checked on the swept path (the parabola against each stump's rectangle
  ``[a, a + w] x [0, h_k)``, exact). A collision *blocks*: the runner stands on the ground 1 mm in
  front of the stump (behind it if it stepped back into it), speed 0, and may back off and try again
  (``blocking=False`` ends the episode instead). Stumps closer than 2 mm form one wall.
* Start position ~ U[0, 1) m (so no open-loop action sequence works); a wall at x = 0.
* Reward: progress ``dx / (30 - x_start)`` (sums to 1 at the finish line) + ``finish_bonus`` [1] on
  reaching 30 m (terminated) - ``hit_penalty`` [0] per collision. ``return_range = (0, 2)``: score 0 =
  no progress, 1 = finished; a task is *mastered* when finished (score >= 0.99), the analogue of the
  paper's "return > 230". A runner stuck in front of a stump runs to the cap, as a stuck walker does,
  so infeasible tasks cost a Random teacher whole episodes.
* Observation (10 floats): x / 30, y / 2, vx / 3, vy / 8, on ground, distance to the next stump's
  leading edge / 3 (clipped to [-1.5, 9] m; negative while above it), the same for the stump after,
  the heights of both / 2 (0 where none is left), t / 130.

Regions (exact, by exhaustive search over action sequences, heights without noise)
----------------------------------------------------------------------------------

* A stump is cleared only by staying above its height over its whole 1.5 m width: at speed v the
  runner is above h for ``2 sqrt(v0^2 - 2 g h) / g``, so a running jump clears ``h <= 2 - g w^2 /
  (8 v^2) = 1.5`` m and a walking jump nothing. The running take-off window is ``0.375 sqrt(64 - 32
  h) - 1.5`` m: 1.3 m at h = 0.25, 0.62 m at 1.0, 0.21 m at 1.35, 0.09 m at 1.45; running steps are
  0.3 m, so above h ~ 1.25 the take-off must be tuned with walking or backing steps.
* **Infeasible**: h >= 1.5 m, half of the box (the box reaches 1.5x the 2 m apex, 2x the highest
  clearable stump); and gaps below ~1.2 m at any height > ~0.1 (a running jump spans 3 m = stump +
  1.5 m: tighter tracks need backing up between stumps, which does not fit in 130 steps; spacing
  <= 1.0 is infeasible for h >= 0.2, spacing >= 1.5 finishable in the minimum ~100 steps up to
  h = 1.4). About 40 % of the box (and of the uniform test set) is feasible.
* **Easy**: h <= ~1.1 with spacing >= 1.5 (a wide take-off window, run and jump).
* **Hard**: h in [1.25, 1.5) (take-off window narrower than a running step; with the 0.1 noise some
  stumps of a track become infeasible near 1.5) and spacings near the 1.2-1.5 m threshold.
* Height 0 with no noise is no obstacle (with the default noise the stumps are ~0.04 m high).

How far PPO gets on each region with the Random teacher and with a teacher uniform over the feasible
heights, by budget, is measured in ``benchmarks/RESULTS.md`` (section *Curriculum PPO*).

Relation to the paper's Stump Tracks: same task box and meaning (height, spacing), per-stump height
noise 0.1 as in TDRL, infeasible high stumps and tight spacings, a stuck learner that wastes whole
episodes, and mastery = finishing; a point runner with 4 discrete actions replaces the Box2D walker
and SAC, which makes it 1000x cheaper and far easier (the paper's Random masters ~19 % in 20M steps).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from envs.task_env import TaskEnv
from envs.task_space import TaskSpace

#: The task box, as in the paper: stump height x stump spacing.
STUMP_TRACK_TASKS = TaskSpace.box(["stump_height", "stump_spacing"], [0.0, 0.0], [3.0, 6.0])

# actions
BACK, WALK, RUN, JUMP = 0, 1, 2, 3
NUM_ACTIONS = 4

_FAR = 9.0  # distances in the observation are clipped to [-stump_width, _FAR]
_FACE_GAP = 1e-3  # a blocked runner stands this far from the stump's face


@struct.dataclass
class StumpTrackState(environment.EnvState):
    x: jax.Array  # horizontal position (m)
    y: jax.Array  # height above the ground (m)
    vx: jax.Array
    vy: jax.Array
    on_ground: jax.Array  # bool
    start: jax.Array  # start position (progress is measured from here)
    layout: jax.Array  # uint32[2]: key data that draws this episode's stump heights
    time: int


@struct.dataclass
class StumpTrackParams(environment.EnvParams):
    stump_height: float = 1.0
    stump_spacing: float = 3.0  # free ground between two stumps (trailing edge to leading edge)
    stump_height_std: float = 0.1  # each stump's height ~ max(N(stump_height, std^2), 0)
    stump_width: float = 1.5
    first_stump: float = 3.0  # leading edge of the first stump
    start_jitter: float = 1.0  # start position ~ U[0, start_jitter)
    track_length: float = 30.0  # the finish line
    gravity: float = 16.0
    jump_speed: float = 8.0  # apex v^2 / 2g = 2.0 m, flight time 2v/g = 1.0 s
    walk_speed: float = 1.5
    run_speed: float = 3.0
    dt: float = 0.1
    finish_bonus: float = 1.0
    hit_penalty: float = 0.0  # reward on every collision with a stump
    blocking: bool = True  # a collision stops the runner at the stump's face (else: episode ends)
    air_control: bool = False  # BACK / WALK / RUN also set the speed in the air
    max_steps_in_episode: int = 130


def max_jump_height(params: StumpTrackParams) -> jax.Array:
    """Apex of a jump, ``v^2 / 2g`` (exact in the discretisation used: see :class:`StumpTrack`)."""
    return params.jump_speed**2 / (2.0 * params.gravity)


def num_stumps(params: StumpTrackParams) -> jax.Array:
    """Number of stumps: every stump that lies wholly before the finish line."""
    period = params.stump_width + params.stump_spacing
    room = params.track_length - params.stump_width - params.first_stump
    return jnp.where(room >= 0, jnp.floor(room / period).astype(jnp.int32) + 1, 0)


def stump_heights(state: StumpTrackState, params: StumpTrackParams, k: jax.Array) -> jax.Array:
    """Height of stump ``k`` in this episode: ``max(stump_height + std * z_k, 0)``, z_k ~ N(0, 1)
    drawn from the episode's layout key (so the track is fixed within an episode)."""
    layout = jax.random.wrap_key_data(state.layout)
    z = jax.vmap(lambda i: jax.random.normal(jax.random.fold_in(layout, i)))(jnp.ravel(k))
    h = params.stump_height + params.stump_height_std * z.reshape(jnp.shape(k))
    return jnp.maximum(h, 0.0)


def _parabola(y0, vy0, g, t):
    return y0 + vy0 * t - 0.5 * g * t * t


class StumpTrack(environment.Environment[StumpTrackState, StumpTrackParams]):
    """A point runner crossing a track of stumps (see the module docstring).

    Actions (discrete 4): 0 step back, 1 walk, 2 run, 3 jump (at the current speed). On the ground
    the action sets the horizontal speed (or adds the jump impulse); in the air it is ignored
    (ballistic flight) unless ``params.air_control``.
    """

    @property
    def default_params(self) -> StumpTrackParams:
        return StumpTrackParams()

    # -- dynamics -----------------------------------------------------------------------------
    def step_env(self, key, state, action, params):
        del key
        action = jnp.asarray(action, jnp.int32)
        g, dt = params.gravity, params.dt
        # on the ground BACK / WALK / RUN set the speed; JUMP keeps it and adds the jump impulse
        speed = jnp.select(
            [action == BACK, action == WALK, action == RUN],
            [-params.walk_speed, params.walk_speed, params.run_speed],
            state.vx,
        )
        jump = action == JUMP
        on_ground = state.on_ground
        steer = on_ground | jnp.asarray(params.air_control, bool)
        vx = jnp.where(steer, speed, state.vx)
        vy = jnp.where(on_ground, jnp.where(jump, params.jump_speed, 0.0), state.vy)
        x0, y0 = state.x, state.y
        running = on_ground & ~jump  # stays on the ground for the whole step
        # airborne: the exact parabola until it meets the ground (positive root of y(t) = 0)
        root = (vy + jnp.sqrt(jnp.maximum(vy * vy + 2.0 * g * y0, 0.0))) / g
        lands = ~running & (root <= dt)
        t_end = jnp.where(lands, root, dt)
        gy = jnp.where(running, 0.0, g)
        vyy = jnp.where(running, 0.0, vy)

        # collision with a stump: the swept path x(t) = x0 + vx t, y(t) parabola (concave, so its
        # minimum over a time interval is at one of the interval's ends) enters [a, a + w] x [0, h)
        period = params.stump_width + params.stump_spacing
        n = num_stumps(params)
        k0 = self._next_stump(x0, params)
        safe_vx = jnp.where(jnp.abs(vx) < 1e-6, 1e-6, vx)
        t_hit = jnp.full((), jnp.inf, jnp.float32)
        face = x0
        heights = stump_heights(state, params, k0 + jnp.arange(-1, 2))
        for j in (-1, 0, 1):  # a step moves less than one period: only these stumps can be met
            k = k0 + j
            a = params.first_stump + k * period
            b = a + params.stump_width
            ta, tb = (a - x0) / safe_vx, (b - x0) / safe_vx
            lo = jnp.maximum(jnp.minimum(ta, tb), 0.0)
            hi = jnp.minimum(jnp.maximum(ta, tb), t_end)
            y_min = jnp.minimum(
                jnp.maximum(_parabola(y0, vyy, gy, lo), 0.0),
                jnp.maximum(_parabola(y0, vyy, gy, hi), 0.0),
            )
            hit = (k >= 0) & (k < n) & (lo <= hi) & (y_min < heights[j + 1]) & (lo < t_hit)
            t_hit = jnp.where(hit, lo, t_hit)
            # blocked in front of the stump, unless the step started wholly behind it (stepping
            # back into it); a runner that comes down onto its top falls back in front of it
            face = jnp.where(hit, jnp.where(x0 > b, b + _FACE_GAP, a - _FACE_GAP), face)
        # stumps closer than two face gaps form one wall: its faces are the first and last stumps'
        wall = params.stump_spacing < 2.0 * _FACE_GAP
        wall_end = params.first_stump + n * period - params.stump_spacing
        wall_face = jnp.where(x0 > wall_end, wall_end + _FACE_GAP, params.first_stump - _FACE_GAP)
        face = jnp.where(wall, wall_face, face)
        hit = jnp.isfinite(t_hit)
        t_c = jnp.where(hit, t_hit, 0.0)
        blocking = jnp.asarray(params.blocking, bool)
        blocked = hit & blocking
        crashed = hit & ~blocking

        x_free = x0 + vx * t_end
        x1 = jnp.where(blocked, face, jnp.where(crashed, x0 + vx * t_c, x_free))
        x1 = jnp.maximum(x1, 0.0)  # a wall at the start
        y1 = jnp.where(
            hit, jnp.where(blocked, 0.0, jnp.maximum(_parabola(y0, vyy, gy, t_c), 0.0)),
            jnp.where(lands | running, 0.0, _parabola(y0, vy, g, t_end)),
        )
        vy1 = jnp.where(hit | lands | running, 0.0, vy - g * t_end)
        vx1 = jnp.where(blocked, 0.0, vx)
        new_ground = lands | running | blocked
        finished = ~crashed & (x1 >= params.track_length)
        progress = jnp.minimum(x1, params.track_length) - jnp.minimum(x0, params.track_length)
        reward = (
            progress / (params.track_length - state.start)
            + jnp.where(finished, params.finish_bonus, 0.0)
            - jnp.where(hit, params.hit_penalty, 0.0)
        ).astype(jnp.float32)
        new_state = StumpTrackState(
            x=x1, y=y1, vx=vx1, vy=vy1, on_ground=new_ground, start=state.start,
            layout=state.layout, time=state.time + 1,
        )
        terminated = crashed | finished
        info = {"hit": hit, "finished": finished}
        return self.get_obs(new_state, params), new_state, reward, terminated, info

    def reset_env(self, key, params):
        k_start, k_layout = jax.random.split(key)
        x0 = jax.random.uniform(k_start, (), jnp.float32) * params.start_jitter
        zero = jnp.zeros((), jnp.float32)
        state = StumpTrackState(
            x=x0, y=zero, vx=zero, vy=zero, on_ground=jnp.ones((), bool), start=x0,
            layout=jax.random.bits(k_layout, (2,), jnp.uint32), time=0,
        )
        return self.get_obs(state, params), state

    @staticmethod
    def _next_stump(x, params):
        """Index of the first stump whose trailing edge is ahead of ``x``."""
        period = params.stump_width + params.stump_spacing
        k = jnp.floor((x - params.first_stump - params.stump_width) / period).astype(jnp.int32) + 1
        return jnp.maximum(k, 0)

    def get_obs(self, state, params=None, key=None):
        params = self.default_params if params is None else params
        period = params.stump_width + params.stump_spacing
        n = num_stumps(params)
        k = self._next_stump(state.x, params)
        lead = lambda i: params.first_stump + i * period - state.x
        d1 = jnp.where(k < n, lead(k), _FAR)
        d2 = jnp.where(k + 1 < n, lead(k + 1), _FAR)
        h12 = stump_heights(state, params, k + jnp.arange(2))
        h1 = jnp.where(k < n, h12[0], 0.0)
        h2 = jnp.where(k + 1 < n, h12[1], 0.0)
        apex = max_jump_height(params)
        obs = jnp.stack([
            state.x / params.track_length,
            state.y / apex,
            state.vx / params.run_speed,
            state.vy / params.jump_speed,
            state.on_ground.astype(jnp.float32),
            jnp.clip(d1, -params.stump_width, _FAR) / 3.0,
            jnp.clip(d2, -params.stump_width, _FAR) / 3.0,
            h1 / apex,
            h2 / apex,
            state.time / params.max_steps_in_episode,
        ])
        return obs.astype(jnp.float32)

    def is_terminated(self, state, params):
        return state.x >= params.track_length

    # -- spaces -------------------------------------------------------------------------------
    @property
    def num_actions(self) -> int:
        return NUM_ACTIONS

    def action_space(self, params=None):
        return spaces.Discrete(NUM_ACTIONS)

    def observation_space(self, params):
        return spaces.Box(-1.0, 3.0, (10,), jnp.float32)


def stump_track_params_for(
    task: jax.Array, base: StumpTrackParams | None = None
) -> StumpTrackParams:
    """``StumpTrackParams`` for ``task = [stump_height, stump_spacing]`` (pure, vmappable)."""
    base = StumpTrackParams() if base is None else base
    return base.replace(stump_height=task[0], stump_spacing=task[1])


def stump_track_tasks(max_steps_in_episode: int = 130, **physics: Any) -> TaskEnv:
    """The Stump Track task environment over ``STUMP_TRACK_TASKS`` (height [0, 3] x spacing [0, 6]).

    Score = return / (1 + finish_bonus): 0 = no progress, 1 = finished; mastered = finished.
    ``physics`` overrides fields of :class:`StumpTrackParams`.
    """
    base = StumpTrackParams(max_steps_in_episode=max_steps_in_episode, **physics)
    return TaskEnv(
        env=StumpTrack(),
        task_space=STUMP_TRACK_TASKS,
        params_for=lambda task: stump_track_params_for(task, base),
        default_task=(1.0, 3.0),
        return_range=(0.0, 1.0 + float(base.finish_bonus)),
        mastery_score=0.99,
        name="stump_track",
    )
