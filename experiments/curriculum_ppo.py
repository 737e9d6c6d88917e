"""PPO with a chosen teacher on a parameterised environment, evaluated on a fixed test set: the
curriculum experiment of Portelas et al. (2019) (teachers compared by the % of test tasks mastered).

Each teacher in ``--teachers`` (``all``: every registered one) is its own run, ``RUN_DIR/<teacher>/``
with the full run-folder contract; the parent folder gets a comparison plot and ``summary.json`` with
every teacher's figures and, for each teacher against the first one (Random by default), the
difference of mean % mastered, its standard error and a Welch t-test
(:func:`experiments.runner.run_many`). A single teacher runs into ``RUN_DIR`` itself.

Every teacher's options (``--alp-gmm.fit-rate 250``, ``--riac.max-region-size 150``) and every task
environment's (``--stump-track.max-steps-in-episode 130``) are fields of the config; those of the
teachers and environments that do not run are recorded as null in ``config.json``.

    python -m experiments.curriculum_ppo --env stump_track --teachers random alp_gmm --seeds 16

``--teacher-preset teachmyagent_stump_tracks`` gives the teachers the options TeachMyAgent's benchmark
used (:mod:`teachers.presets`) in place of the class defaults; ALP-GMM's history is sized to the run
(``total_timesteps / 10`` episodes; overwritten entries are counted in its state).
"""

from __future__ import annotations

import dataclasses

from algos.ppo import PPOConfig, make_train
from envs.registry import (
    EnvOptions,
    check_env_name,
    env_options,
    env_record,
    make_task_env,
    unused_env_options,
)
from experiments.ppo_job import ppo_job
from experiments.runner import Job, RunConfig, cli, run_many
from teachers.presets import preset
from teachers.registry import (
    TeacherOptions,
    make_teacher,
    teacher_names,
    teacher_options,
    unused_teacher_options,
)


@dataclasses.dataclass(frozen=True)
class Config(RunConfig, TeacherOptions, EnvOptions):
    env: str = "stump_track"
    """task environment: a name of envs.registry, or module:function, your own TaskEnv factory"""
    teachers: tuple[str, ...] = ("random", "alp_gmm")
    """teachers to compare (teachers.registry; 'all': every one); the first is the baseline"""
    test_tasks: int = 100
    """size of the fixed uniform test set"""
    test_seed: int = 4222
    """numpy seed of the test set"""
    episodes_per_task: int = 4
    """evaluation episodes per test task (mastered = mean score >= the env's mastery score)"""
    ppo: PPOConfig = PPOConfig(num_envs=16, num_steps=128, total_timesteps=3_000_000)
    seeds: int = 16
    chunks: int = 15
    teacher_preset: str | None = None
    """named teacher options (teachers.presets, e.g. teachmyagent_stump_tracks) for the teachers it names"""

    def quick_version(self) -> Config:
        return dataclasses.replace(
            self, seeds=2, chunks=2, test_tasks=16, episodes_per_task=1,
            ppo=dataclasses.replace(self.ppo, num_envs=8, total_timesteps=16_384),
        )

    def validate(self) -> None:
        """Host-side checks with clear errors (before anything is compiled)."""
        super().validate()
        teacher_names(self.teachers)
        check_env_name(self.env)
        if self.test_tasks < 1 or self.episodes_per_task < 1:
            raise ValueError("--test-tasks and --episodes-per-task must be >= 1")
        self.ppo.validate()
        if self.teacher_preset is not None:
            preset(self.teacher_preset, "random")  # unknown names fail here


def teacher_runs(name: str, config: Config) -> list[tuple[str, Job, Config]]:
    """One ``(teacher, job, config)`` per teacher of ``config.teachers``: PPO on ``config.env``
    with that teacher and its options; the child config names only that teacher."""
    options = env_options(config, config.env)
    task_env = make_task_env(config.env, options)
    record = {"env": env_record(config.env, task_env, options)}
    test_tasks = task_env.task_space.test_set(config.test_tasks, config.test_seed)
    runs = []
    for teacher in teacher_names(config.teachers):
        options = teacher_options(config, teacher)
        if config.teacher_preset is not None and preset(config.teacher_preset, teacher) is not None:
            options = preset(config.teacher_preset, teacher)
        made = make_teacher(teacher, task_env.task_space, options,
                            max_episodes=max(config.ppo.total_timesteps // 10, 1))
        trainer = make_train(config.ppo, task_env, made)
        unused = [*unused_teacher_options([teacher]), *unused_env_options([config.env])]
        job = ppo_job(f"{name}/{teacher}", trainer, test_tasks, config.episodes_per_task, unused=unused,
                      record=record)
        runs.append((teacher, job, dataclasses.replace(config, teachers=(teacher,))))
    return runs


def jobs(config: Config) -> list[tuple[str, Job, Config]]:
    """The runs of ``config`` (what :func:`experiments.evaluate.load_run` rebuilds)."""
    return teacher_runs(f"curriculum_ppo {config.env}", config)


def main(config: Config, name: str | None = None) -> dict:
    """Run every teacher (``name``: the experiment's, default ``curriculum_ppo <env>``)."""
    config.validate()
    name = name or f"curriculum_ppo {config.env}"
    return run_many(name, teacher_runs(name, config), config, metric="mastered_pct")


if __name__ == "__main__":
    cli(Config, main)
