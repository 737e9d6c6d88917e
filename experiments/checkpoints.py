"""Orbax checkpoints of a run's state pytree, behind one small class (orbax V0 ``CheckpointManager``).

A checkpoint holds the whole training state (parameters, optimiser, environments, teacher, PRNG keys)
and a small JSON record (which chunk it ends). Restoring into a freshly initialised state of the same
structure gives back the exact arrays, with that state's shardings.

Every checkpoint carries a manifest, ``<step>/curriculax_sha256.json``: the SHA-256 of every file orbax
wrote, taken once the save has finished. :meth:`Checkpointer.restore_latest` verifies it before
restoring and falls back to the newest checkpoint that verifies (an emptied step folder, a truncated
file or one flipped bit is *damaged*, not silently restored); checkpoints newer than the one restored
are deleted, because orbax refuses to save a step at or below its latest one.

In a multi-process run (``jax.distributed``) every process calls :meth:`Checkpointer.save` and
:meth:`Checkpointer.restore_latest` with its shards of the same global state: orbax writes each
process's shards and lets process 0 finalise the step. Process 0 writes the manifest once the save has
finished on every process, and deletes damaged steps; every process verifies before restoring, so all
restore the same step. The checkpoint does not depend on how it was sharded: a run of another number
of processes or devices restores it into its own shardings.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
from typing import Any

import jax
import orbax.checkpoint as ocp

from envs.distributed import is_main_process, sync_processes

MANIFEST = "curriculax_sha256.json"


class CheckpointError(RuntimeError):
    """A checkpoint folder that cannot be used (nothing verifies, or a save that orbax skipped)."""


class DiskFullError(OSError):
    """No space left on the device while writing part of a run folder."""


def disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or anything in its cause / context chain or exception group) is ENOSPC."""
    seen, todo = set(), [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "No space left on device" in str(e):
            return True
        todo.extend([e.__cause__, e.__context__, *getattr(e, "exceptions", ())])
    return False


def _file_hashes(step_dir: str) -> dict[str, str]:
    out = {}
    for root, _, files in os.walk(step_dir):
        for name in files:
            path = os.path.join(root, name)
            rel = os.path.relpath(path, step_dir)
            if rel in (MANIFEST, MANIFEST + ".tmp"):
                continue
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            out[rel] = h.hexdigest()
    return dict(sorted(out.items()))


def step_dirs(directory: str) -> list[int]:
    """The finished step folders of a checkpoint folder (integer names), oldest first."""
    if not os.path.isdir(directory):
        return []
    return sorted(int(n) for n in os.listdir(directory)
                  if n.isdigit() and os.path.isdir(os.path.join(directory, n)))


class Checkpointer:
    def __init__(self, directory: str, max_to_keep: int = 2):
        self.directory = os.path.abspath(directory)
        self._max_to_keep = max_to_keep
        self._manager = self._open()

    def _open(self) -> ocp.CheckpointManager:
        return ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=self._max_to_keep, create=True),
            item_names=("state", "meta"),
        )

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Save ``step`` and its manifest, synchronously. Raises :class:`DiskFullError` (one line)
        when the device is full, :class:`CheckpointError` when orbax skips the step. orbax's own
        error logs of its background threads are held back while saving: what failed is raised."""
        absl_logger = logging.getLogger("absl")
        level = absl_logger.level
        absl_logger.setLevel(logging.CRITICAL)
        try:
            saved = self._manager.save(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)
                ),
            )
            self._manager.wait_until_finished()
            if not saved or self._manager.latest_step() != step:
                raise CheckpointError(
                    f"orbax did not save checkpoint {step} in {self.directory} (its latest is "
                    f"{self._manager.latest_step()}): the folder holds checkpoints of another run"
                )
            sync_processes(f"checkpoint:saved-{step}")  # every process's shards are on disk
            if is_main_process():
                step_dir = os.path.join(self.directory, str(step))
                hashes = _file_hashes(step_dir)
                tmp = os.path.join(step_dir, MANIFEST + ".tmp")
                with open(tmp, "w") as f:
                    json.dump(hashes, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, os.path.join(step_dir, MANIFEST))
            sync_processes(f"checkpoint:manifest-{step}")
        except CheckpointError:
            raise
        except Exception as e:
            if disk_full(e):
                raise DiskFullError(
                    errno.ENOSPC, f"no space left on the device while writing checkpoint {step} in "
                    f"{self.directory}; free some space and continue with --resume"
                ) from None
            raise
        finally:
            absl_logger.setLevel(level)

    def verify(self, step: int) -> str | None:
        """None when checkpoint ``step`` matches its manifest, else what is wrong with it."""
        step_dir = os.path.join(self.directory, str(step))
        path = os.path.join(step_dir, MANIFEST)
        if not os.path.exists(path):
            return "it has no checksum manifest (the save did not finish)"
        try:
            with open(path) as f:
                expected = json.load(f)
        except (OSError, ValueError):
            return "its checksum manifest cannot be read"
        actual = _file_hashes(step_dir)
        missing = sorted(set(expected) - set(actual))
        if missing:
            return f"{len(missing)} file(s) are missing ({missing[0]}, ...)"
        changed = [name for name in expected if expected[name] != actual[name]]
        if changed:
            return f"the checksum of {changed[0]} differs" + (
                f" (and {len(changed) - 1} more)" if len(changed) > 1 else "")
        return None

    def restore(self, step: int, like: Any) -> tuple[Any, dict]:
        """Restore checkpoint ``step`` into the structure, dtypes and shardings of ``like``."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        out = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
        return out["state"], dict(out["meta"])

    def restore_latest(self, like: Any, report=print) -> tuple[int | None, Any, dict]:
        """The newest checkpoint that verifies, restored into ``like``: ``(step, state, meta)``, or
        ``(None, like, {})`` when there is no checkpoint. Damaged ones are reported (``report``),
        and the damaged ones newer than the one restored are deleted. When every checkpoint lacks its
        manifest (saves cut short by a kill), they are deleted and ``(None, like, {})`` is returned: the
        run starts again. Raises :class:`CheckpointError` naming the folder when checkpoints exist, some
        finished, and none verifies."""
        steps = sorted(set(self.all_steps()) | set(step_dirs(self.directory)), reverse=True)
        if not steps:
            return None, like, {}
        damaged = []
        for step in steps:
            problem = self.verify(step)
            if problem is None:
                try:
                    state, meta = self.restore(step, like)
                except Exception as e:  # noqa: BLE001  (orbax / TensorStore errors of every kind)
                    problem = f"orbax cannot restore it ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
            if problem is not None:
                report(f"checkpoint {step} in {self.directory} is damaged: {problem}")
                damaged.append(step)
                continue
            if damaged:
                report(f"continuing from checkpoint {step}, the newest that verifies")
                self._delete(damaged)
            return step, state, meta
        if all(not os.path.exists(os.path.join(self.directory, str(step), MANIFEST)) for step in damaged):
            # Only saves that a kill cut short before their manifest (the first checkpoint of a run
            # killed mid-save): nothing was ever complete, so the run starts again from chunk 0.
            report(f"no checkpoint in {self.directory} finished its save; starting from the beginning")
            self._delete(damaged)
            return None, like, {}
        raise CheckpointError(
            f"no checkpoint in {self.directory} verifies (damaged: {', '.join(map(str, damaged))}); "
            "start a new run in another --run-dir"
        )

    def _delete(self, steps: list[int]) -> None:
        self._manager.close()
        sync_processes("checkpoint:delete")
        if is_main_process():
            for step in steps:
                shutil.rmtree(os.path.join(self.directory, str(step)), ignore_errors=True)
        sync_processes("checkpoint:deleted")
        self._manager = self._open()

    def wait(self) -> None:
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()
