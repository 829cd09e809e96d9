"""The code base stays ruff-clean (line length 88, rules in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from agent.config import PROJECT_ROOT


def test_ruff_clean():
    ruff = Path(sys.executable).parent / "ruff"
    out = subprocess.run([str(ruff), "check", "agent", "tests", "bench", "app.py"],
                         capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
