"""A user project with its own ``envs/`` package shadows curriculax's top-level ``envs``: the error
says so and names both folders (it used to be ``cannot import name 'TaskSpace' from 'envs'``)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_users_envs_package_gets_a_clear_error(tmp_path):
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "__init__.py").write_text("MY_ENVS = True\n")
    env = {**os.environ, "PYTHONPATH": ROOT}  # after the working directory, as for an installed package
    proc = subprocess.run([sys.executable, "-c", "from algos.ppo import make_train"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "the package 'envs' was imported from" in last and str(tmp_path / "envs") in last
    assert os.path.join(ROOT, "envs") in last and "Package names" in last


def test_a_missing_dependency_of_our_envs_is_not_called_shadowing(tmp_path):
    """Our own envs failing to import (here gymnax made unimportable) re-raises that error as it is."""
    (tmp_path / "gymnax").mkdir()
    (tmp_path / "gymnax" / "__init__.py").write_text("raise ImportError('no gymnax here')\n")
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.run([sys.executable, "-c", "from algos.ppo import make_train"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == "ImportError: no gymnax here" and "shadows" not in proc.stderr
