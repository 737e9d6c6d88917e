"""The README's code examples run as printed: the Pendulum task environment (its saturating torque
follows max_torque) and the easy_first teacher, whose easy corner on cartpole_tasks is easy (a random
policy balances longer there than at the low corner, which the README's first version used)."""

import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from algos.evaluation import evaluate_tasks
from algos.networks import mlp_policy
from algos.ppo import PPOConfig, make_train
from envs.registry import make_task_env

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_block(marker: str) -> dict:
    text = open(os.path.join(ROOT, "README.md")).read()
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if marker in b)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    return namespace


def test_readme_pendulum_task_env():
    env = _readme_block("pendulum_tasks = TaskEnv")["pendulum_tasks"]
    highs = jax.vmap(env.action_bounds)(jnp.array([[2.0, 1.0], [3.0, 1.0]]))[1]
    np.testing.assert_allclose(highs[:, 0], [2.0, 3.0])


def test_readme_easy_first_teacher_on_cartpole_tasks():
    easy_first = _readme_block("def easy_first")["easy_first"]
    env = make_task_env("cartpole_tasks")
    space = env.task_space
    teacher = easy_first(space, easy=(1.0, 1.0))
    state = teacher.init(jax.random.PRNGKey(0))
    _, tasks = teacher.sample(state, jax.random.PRNGKey(1), 64)
    unit = np.asarray(space.normalise(tasks))
    assert unit.min() >= 0.8 - 1e-6  # within 20 % of the easy corner
    policy = mlp_policy(2, True)
    params = policy.init(jax.random.PRNGKey(2), jnp.zeros((1, 4)), jnp.zeros((1, 2)))
    easy, _ = evaluate_tasks(policy, params, env, jnp.asarray(tasks[:16]), jax.random.PRNGKey(3))
    low = jnp.asarray(space.denormalise(0.2 * jax.random.uniform(jax.random.PRNGKey(4), (16, 2))))
    hard, _ = evaluate_tasks(policy, params, env, low, jax.random.PRNGKey(3))
    assert float(easy.mean()) > 3 * float(hard.mean()), (easy.mean(), hard.mean())
    trainer = make_train(PPOConfig(num_envs=4, num_steps=16, total_timesteps=128, num_minibatches=2), env,
                         teacher)
    final, metrics = jax.jit(lambda k: trainer.train_chunk(trainer.init(k), 2))(jax.random.PRNGKey(5))
    assert float(metrics["episodes"].sum()) > 0 and np.isfinite(float(final.teacher_state.mean_score))
