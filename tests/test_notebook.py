"""The quick-start notebook executes top to bottom; its default run shows learning (slow check)."""

import os
import re

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _execute(steps: int | None = None):
    nb = nbformat.read(os.path.join(ROOT, "notebooks", "quickstart.ipynb"), as_version=4)
    assert any("QUICK = True" in c.source for c in nb.cells)
    if steps is not None:  # a smaller budget than the notebook's default, for the default test suite
        for cell in nb.cells:
            cell.source = re.sub(r"STEPS = [0-9_]+", f"STEPS = {steps}", cell.source)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": ROOT}}).execute()
    outputs = "".join(
        o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
    )
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    return outputs, images


def test_quickstart_notebook_runs():
    outputs, images = _execute(steps=16_384)
    assert "mastered" in outputs and "grid of 36 tasks" in outputs
    assert len(images) == 4


@pytest.mark.slow
def test_quickstart_default_run_shows_learning():
    outputs, _ = _execute()
    returns = [float(x) for x in re.findall(r"return on the teacher's tasks\s+([0-9.]+)", outputs)]
    mastered = float(re.search(r"mastered ([0-9.]+) ±", outputs).group(1))
    assert returns[-1] > 2 * returns[0] and mastered > 0, outputs
