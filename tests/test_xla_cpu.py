"""The XLA CPU deadlock work-around (envs/xla_cpu.py) is applied on import, and only when it can be."""

import os
import subprocess
import sys

from envs.xla_cpu import FLAG

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _flags_after(script: str, **env_overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "CURRICULAX_KEEP_XLA_FLAGS")}
    env.update(env_overrides)
    return subprocess.run([sys.executable, "-W", "always", "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_flag_added_before_jax_starts_and_seen_by_xla():
    proc = _flags_after("import os, experiments, jax; jax.numpy.zeros(1).block_until_ready();"
                        "print(os.environ['XLA_FLAGS'])", XLA_FLAGS="--xla_force_host_platform_device_count=2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["--xla_force_host_platform_device_count=2", FLAG]
    assert "RuntimeWarning" not in proc.stderr


def test_user_choice_and_opt_out_are_respected():
    mine = "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    proc = _flags_after("import os, envs; print(os.environ['XLA_FLAGS'])", XLA_FLAGS=mine)
    assert proc.stdout.split() == [mine]
    proc = _flags_after("import os, envs; print(os.environ.get('XLA_FLAGS'))", CURRICULAX_KEEP_XLA_FLAGS="1")
    assert proc.stdout.strip() == "None"


def test_warns_when_jax_started_first():
    proc = _flags_after("import os, gymnax, envs; print(os.environ.get('XLA_FLAGS'))")
    assert proc.stdout.strip() == "None"
    assert "cannot take effect" in proc.stderr


FIRST_IMPORTS = {  # a script's first line, one per public package (a submodule, as scripts do)
    "algos": "from algos.ppo import make_train",
    "teachers": "from teachers.alp_gmm import alp_gmm",
    "memory": "from memory.s5 import S5",
    "envs": "from envs.popgym import popgym_names",
    "experiments": "from experiments.runner import run",
    "benchmarks": "import benchmarks.teachers",
}


def test_every_public_package_applies_it_whatever_is_imported_first():
    """``from algos.ppo import ...`` as the first line used to import gymnax before ``envs`` and turn
    the work-around off. Each package's own ``__init__`` applies it now (run in parallel)."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "CURRICULAX_KEEP_XLA_FLAGS")}
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-W", "always", "-c",
             f"{line}; import os, gymnax, jax; jax.numpy.zeros(1).block_until_ready(); "
             "print(os.environ.get('XLA_FLAGS'))"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, line in FIRST_IMPORTS.items()
    }
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (name, err)
        assert out.split() == [FLAG], (name, out)
        assert "cannot take effect" not in err, (name, err)
