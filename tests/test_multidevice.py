"""tests/multidevice.py re-runs a script that hangs (once) and never one that fails."""

import textwrap
import warnings

import pytest

from tests.multidevice import run_script

HANGS_ONCE = textwrap.dedent("""
    import json, os, sys, time
    marker = sys.argv[1]
    if not os.path.exists(marker):
        open(marker, "w").close()
        time.sleep(60)  # the first run hangs
    print("RESULT", json.dumps({"attempt": "second"}))
""")


def test_a_hang_is_dumped_and_run_again(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = run_script(HANGS_ONCE, str(tmp_path / "marker"), devices=1, hang_s=2)
    assert out == {"attempt": "second"}
    [warning] = [w for w in caught if "XLA CPU hang" in str(w.message)]
    assert 'File "<string>", line 7 in <module>' in str(warning.message)  # the dumped stack: the sleep


def test_two_hangs_fail_and_a_failure_is_not_retried(tmp_path):
    with pytest.raises(AssertionError, match="hung twice"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_script("import time; time.sleep(60)", devices=1, hang_s=2)
    counter = tmp_path / "count"
    fails = f"open({str(counter)!r}, 'a').write('x'); raise SystemExit('wrong answer')"
    with pytest.raises(AssertionError, match="wrong answer"):
        run_script(fails, devices=1, hang_s=30)
    assert counter.read_text() == "x"
