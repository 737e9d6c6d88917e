"""Run a Python script in a subprocess over 8 host CPU devices, telling a hang from a failure.

XLA's CPU runtime still deadlocks now and then when one process drives 8 forced host devices on a
2-core machine, even with the scheduler work-around of ``envs/xla_cpu.py``: the sharding test ran in
28 s here and hung past 300 s once in CI, printing nothing. That hang is XLA's, not a wrong answer of
the code under test, so a run that hangs is dumped (every Python thread's stack, by ``faulthandler``)
and run once more; a second hang fails the test with both dumps. A script that fails or gives a wrong
answer is never re-run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANG_MARK = "Timeout ("  # how faulthandler.dump_traceback_later starts its dump


def host_devices_env(devices: int = 8) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CURRICULAX_")}
    env.update(XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    return env


def _attempt(script: str, args: tuple[str, ...], env: dict, hang_s: int) -> tuple[bool, subprocess.CompletedProcess]:
    watchdog = f"import faulthandler; faulthandler.dump_traceback_later({hang_s}, exit=True)\n"
    try:
        proc = subprocess.run([sys.executable, "-c", watchdog + script, *args], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=hang_s + 60)
    except subprocess.TimeoutExpired as e:  # stuck outside Python's reach: no dump
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        return True, subprocess.CompletedProcess(e.cmd, -9, out, f"killed after {hang_s + 60} s")
    return proc.returncode != 0 and HANG_MARK in proc.stderr, proc


def run_script(script: str, *args: str, devices: int = 8, hang_s: int = 200) -> dict:
    """Run ``script`` with ``args``; return the JSON it printed on its last ``RESULT`` line."""
    env = host_devices_env(devices)
    dumps = []
    for _ in range(2):
        hung, proc = _attempt(script, args, env, hang_s)
        if not hung:
            break
        dumps.append(proc.stderr[-4000:])
        warnings.warn(f"XLA CPU hang over {devices} host devices after {hang_s} s; run again. "
                      f"Stacks:\n{dumps[-1]}", RuntimeWarning)
    else:
        raise AssertionError(f"the script hung twice past {hang_s} s:\n" + "\n---\n".join(dumps))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")][-1]
    return json.loads(line[len("RESULT "):])
