"""A run folder under faults never loses or mixes data: damaged checkpoints (truncated, one bit flipped,
emptied) are detected by their checksums and the resume falls back to the newest one that verifies; a
kill during the resume's rewrite of metrics.jsonl, or a partial last line, stays resumable; a second
run into a busy folder is refused; a fresh run never inherits old checkpoints; --resume on an empty
folder starts the run and a resumed run says from which chunk; a full disk gives one line and the run
resumes once space is freed. Each resumed run ends equal to the uninterrupted one.

Faults are injected in-process (an exception where the kill would land, files damaged between runs);
one subprocess holds a folder's lock as another run would.
"""

import dataclasses
import errno
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments import runner
from experiments.checkpoints import MANIFEST, Checkpointer, CheckpointError, DiskFullError
from experiments.runner import RunConfig, RunFolderError, read_records, run, run_many
from tests.test_runner import PLAN, _final_toy_state, _strip, toy_job

SEEDS = 2


class Killed(BaseException):
    """Stands for a SIGKILL: nothing after it runs (BaseException: no handler catches it)."""


def _config(run_dir, **kw):
    return RunConfig(seeds=SEEDS, seed=1, run_dir=str(run_dir), progress=False, **kw)


def _killed_at(chunk):
    """The toy job, killed while chunk ``chunk`` runs (after checkpoint ``chunk``)."""
    calls = []

    def reduce(metrics):
        calls.append(1)
        if len(calls) == chunk + 1:
            raise Killed
        return toy_job().reduce(metrics)

    return toy_job()._replace(reduce=reduce)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("full") / "run"
    summary = run(toy_job(), _config(run_dir), verbose=False)
    return {"records": _strip(read_records(str(run_dir / "metrics.jsonl"))),
            "state": _final_toy_state(str(run_dir), SEEDS)[0], "summary": summary}


def _assert_equal_to(uninterrupted, run_dir, summary):
    assert _strip(read_records(os.path.join(run_dir, "metrics.jsonl"))) == uninterrupted["records"]
    state, meta = _final_toy_state(str(run_dir), SEEDS)
    assert meta == {"chunks_done": len(PLAN)}
    jax.tree.map(np.testing.assert_array_equal, state, uninterrupted["state"])
    assert summary["final_loss"] == uninterrupted["summary"]["final_loss"]


def _killed_run(run_dir, chunk=2):
    with pytest.raises(Killed):
        run(_killed_at(chunk), _config(run_dir), verbose=False)
    assert sorted(int(n) for n in os.listdir(run_dir / "checkpoints") if n.isdigit()) == [
        chunk - 1, chunk][-min(chunk, 2):]


def _largest_file(step_dir):
    files = [os.path.join(r, n) for r, _, ns in os.walk(step_dir) for n in ns if n != MANIFEST]
    return max(files, key=os.path.getsize)


def _truncate_half(path):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _flip_one_bit(path):
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        data[len(data) // 2] ^= 0x01
        f.seek(0)
        f.write(data)


def _empty_step(step_dir):
    for r, _, ns in os.walk(step_dir):
        for n in ns:
            if n != MANIFEST:
                open(os.path.join(r, n), "w").close()


@pytest.mark.parametrize("damage", [_truncate_half, _flip_one_bit, "empty"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, uninterrupted, damage,
                                                                  capsys):
    """Killed after the second checkpoint, the newest checkpoint's largest file damaged: --resume
    names the damaged checkpoint, continues from the previous one and ends equal to the
    uninterrupted run (a flipped bit used to resume with rc 0 and a wrong value)."""
    run_dir = tmp_path / "cut"
    _killed_run(run_dir, chunk=2)
    step_dir = str(run_dir / "checkpoints" / "2")
    if damage == "empty":
        _empty_step(step_dir)
    else:
        damage(_largest_file(step_dir))
    capsys.readouterr()
    summary = run(toy_job(), _config(run_dir, resume=True), verbose=False)
    err = capsys.readouterr().err
    assert "checkpoint 2 in" in err and "is damaged" in err
    assert "from chunk 1 of 5 (checkpoint 1)" in err
    _assert_equal_to(uninterrupted, run_dir, summary)


def test_no_checkpoint_verifies_names_the_folder(tmp_path):
    run_dir = tmp_path / "cut"
    _killed_run(run_dir, chunk=2)
    for step in ("1", "2"):
        _flip_one_bit(_largest_file(str(run_dir / "checkpoints" / step)))
    with pytest.raises(CheckpointError, match=r"no checkpoint in .*cut/checkpoints verifies \(damaged: 2, 1\)"):
        run(toy_job(), _config(run_dir, resume=True), verbose=False)


def test_a_save_without_its_manifest_is_not_trusted(tmp_path):
    """A kill between orbax's save and the manifest: that checkpoint is skipped."""
    run_dir = tmp_path / "cut"
    _killed_run(run_dir, chunk=2)
    os.remove(run_dir / "checkpoints" / "2" / MANIFEST)
    ckpt = Checkpointer(str(run_dir / "checkpoints"))
    assert "no checksum manifest" in ckpt.verify(2) and ckpt.verify(1) is None
    ckpt.close()


def test_kill_during_the_resume_rewrite_of_metrics_stays_resumable(tmp_path, uninterrupted, monkeypatch):
    """The rewrite used to truncate metrics.jsonl in place: a kill then left it empty and the run
    could not be resumed ("metrics.jsonl has 0 of 2 chunks")."""
    run_dir = tmp_path / "cut"
    _killed_run(run_dir, chunk=3)
    before = (run_dir / "metrics.jsonl").read_text()
    real_fsync = os.fsync

    def killed_fsync(fd):
        raise Killed

    monkeypatch.setattr(os, "fsync", killed_fsync)
    with pytest.raises(Killed):
        run(toy_job(), _config(run_dir, resume=True), verbose=False)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert (run_dir / "metrics.jsonl").read_text() == before
    summary = run(toy_job(), _config(run_dir, resume=True), verbose=False)
    _assert_equal_to(uninterrupted, run_dir, summary)


def test_partial_last_line_is_left_out_on_resume(tmp_path, uninterrupted):
    run_dir = tmp_path / "cut"
    _killed_run(run_dir, chunk=3)
    with open(run_dir / "metrics.jsonl", "a") as f:
        f.write('{"chunk": 3, "iteration": 9, "loss": [0.1')  # a full disk or a kill mid-write
    with pytest.warns(RuntimeWarning, match="partial last line"):
        summary = run(toy_job(), _config(run_dir, resume=True), verbose=False)
    _assert_equal_to(uninterrupted, run_dir, summary)


def test_a_damaged_line_before_others_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"chunk": 0}\n{"chunk": 1, "lo\n{"chunk": 2}\n')
    with pytest.raises(RunFolderError, match="line 2 is not JSON"):
        read_records(str(path))


def test_a_fresh_run_never_inherits_old_checkpoints(tmp_path):
    """A folder with an older run's checkpoints and an emptied metrics.jsonl: the fresh run used to
    exit 0 ending with the old run's final checkpoint (orbax skips steps at or below its latest)."""
    run_dir = tmp_path / "r"
    run(toy_job(), _config(run_dir), verbose=False)
    open(run_dir / "metrics.jsonl", "w").close()
    os.remove(run_dir / "summary.json")
    with pytest.raises(FileExistsError, match=r"checkpoints \[4, 5\]"):
        run(toy_job(), dataclasses.replace(_config(run_dir), seed=7), verbose=False)
    # and a checkpoint orbax skips is an error, never a silent no-op
    ckpt = Checkpointer(str(run_dir / "checkpoints"))
    state, _ = ckpt.restore(5, jax.vmap(toy_job().init)(runner.seed_keys(_config(run_dir))))
    with pytest.raises(CheckpointError, match="did not save checkpoint 3"):
        ckpt.save(3, state, {"chunks_done": 3})
    ckpt.close()


LOCK_HOLDER = ("import fcntl, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
               "f.write('4242'); f.flush(); print('held', flush=True); time.sleep(60)")


def test_a_second_run_into_a_busy_folder_is_refused(tmp_path):
    run_dir = tmp_path / "busy"
    os.makedirs(run_dir)
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(run_dir / ".lock")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderError, match=r"busy is in use by another run \(pid 4242\)"):
            run(toy_job(), _config(run_dir), verbose=False)
        assert not os.path.exists(run_dir / "metrics.jsonl")
        with pytest.raises(RunFolderError, match="in use"):
            run_many("toy", [("a", toy_job(), _config(run_dir)), ("b", toy_job(), _config(run_dir))],
                     _config(run_dir), metric="loss", verbose=False)
        assert not os.path.exists(run_dir / "config.json")
    finally:
        holder.kill()
        holder.wait()
    run(toy_job(), _config(run_dir), verbose=False)  # the lock died with its process


def test_resume_on_an_empty_folder_starts_the_run(tmp_path, uninterrupted, capsys):
    summary = run(toy_job(), _config(tmp_path / "new", resume=True), verbose=False)
    assert "nothing to resume" in capsys.readouterr().err
    _assert_equal_to(uninterrupted, tmp_path / "new", summary)
    # killed while compiling: config.json only
    run_dir = tmp_path / "compiling"
    with pytest.raises(Killed):
        run(_killed_at(0), _config(run_dir), verbose=False)
    summary = run(toy_job(), _config(run_dir, resume=True), verbose=False)
    assert "from the start (no checkpoint yet)" in capsys.readouterr().err
    _assert_equal_to(uninterrupted, run_dir, summary)


def test_full_disk_gives_one_line_and_resumes_once_freed(tmp_path, uninterrupted, monkeypatch, capsys):
    run_dir = tmp_path / "full_disk"
    real_save = Checkpointer.save

    def save(self, step, state, meta):
        if step == 3:
            def no_space(*a, **k):
                raise OSError(errno.ENOSPC, "No space left on device")
            monkeypatch.setattr(self._manager, "save", no_space)
        return real_save(self, step, state, meta)

    monkeypatch.setattr(Checkpointer, "save", save)
    with pytest.raises(DiskFullError, match="no space left on the device while writing checkpoint 3"):
        run(toy_job(), _config(run_dir), verbose=False)
    monkeypatch.setattr(Checkpointer, "save", real_save)
    summary = run(toy_job(), _config(run_dir, resume=True), verbose=False)
    _assert_equal_to(uninterrupted, run_dir, summary)


def _sweep(root, resume=False, seed=1):
    children = [("a", toy_job()._replace(name="toy/a"), RunConfig(seeds=SEEDS, seed=seed)),
                ("b", toy_job()._replace(name="toy/b"), RunConfig(seeds=SEEDS, seed=seed + 1))]
    return run_many("toy", children, RunConfig(seeds=SEEDS, seed=seed, run_dir=str(root), resume=resume,
                                               progress=False), metric="loss", verbose=False)


def test_sweep_parent_config_is_checked_before_it_is_written(tmp_path):
    root = tmp_path / "sweep"
    _sweep(root)
    saved = (root / "config.json").read_bytes()
    with pytest.raises(ValueError, match="seed"):
        _sweep(root, resume=True, seed=3)  # every child had finished
    with pytest.raises(FileExistsError):
        _sweep(root, seed=3)
    os.remove(root / "summary.json")
    with pytest.raises(FileExistsError, match="sweep/a already holds a run"):
        _sweep(root, seed=3)  # the parent has no summary yet, its children hold runs
    assert (root / "config.json").read_bytes() == saved


def test_a_kill_during_the_first_save_restarts_the_run(tmp_path, uninterrupted, capsys):
    """Killed after chunk 1's checkpoint folder appeared but before its manifest: no checkpoint ever
    finished, so --resume starts from chunk 0 (not 'no checkpoint verifies') and ends equal to the
    uninterrupted run."""
    run_dir = tmp_path / "cut"
    _killed_run(run_dir, chunk=1)
    os.remove(run_dir / "checkpoints" / "1" / MANIFEST)
    capsys.readouterr()
    summary = run(toy_job(), _config(run_dir, resume=True), verbose=False)
    err = capsys.readouterr().err
    assert "finished its save; starting from the beginning" in err
    assert "from the start (no checkpoint yet)" in err
    _assert_equal_to(uninterrupted, run_dir, summary)
