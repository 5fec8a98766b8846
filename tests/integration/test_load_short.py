"""bench/load.py in a shortened form: pollers, uploads and a batch together, no errors."""

import subprocess
import sys

from tests.fixtures.environment import PROJECT_ROOT


def test_shortened_load_run_has_no_errors(eval_image):
    shortened = ["--seconds", "20", "--pollers", "40", "--uploads-per-second", "3"]
    result = subprocess.run(
        [sys.executable, "bench/load.py", *shortened, "--teams", "4", "--seeds", "2"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = result.stdout + result.stderr[-3000:]
    assert result.returncode == 0, report
    assert "errors: 0" in result.stdout, report
    assert "batch finished" in result.stdout, report
    print(result.stdout)
