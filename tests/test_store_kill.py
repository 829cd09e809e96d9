"""An import killed midway leaves the store as it was, on SQLite and PostgreSQL.

A real ``qa-agent import`` process is killed with SIGKILL while it works on a
large file; the store then holds either none or all of the file's rows (one
transaction), never a part, and importing the file again completes it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from agent.qa.store import MeasurementStore

ROWS = 60_000


def _big_csv(path: Path) -> Path:
    """2 000 days (2020-2025) of daily output for 15 machines x 2 energies."""
    days = np.datetime64("2020-01-01") + np.arange(2000)
    lines = ["date,machine,test,energy,value,unit"]
    values = np.random.default_rng(3).normal(0, 0.3, ROWS)
    i = 0
    for d in days:
        for m in range(15):
            for energy in ("6X", "10X"):
                lines.append(f"{d},KillLinac{m},output,{energy},{values[i]:.4f},%")
                i += 1
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _counts(url: str) -> int:
    return MeasurementStore(url).counts()["measurement"]


def test_a_killed_import_leaves_all_or_nothing(store_url, tmp_path):
    csv = _big_csv(tmp_path / "big.csv")
    env = {**os.environ, "QA_AGENT_DATABASE_URL": store_url,
           "QA_AGENT_DATA_DIR": str(tmp_path / "data")}
    qa_agent = str(Path(sys.executable).parent / "qa-agent")
    MeasurementStore(store_url)  # the tables exist before the race starts
    # How long a whole import takes here (into a scratch SQLite store), so the
    # kills land while the rows are being read and written, not at start-up.
    scratch = {**env, "QA_AGENT_DATABASE_URL":
               f"sqlite:///{tmp_path / 'scratch.sqlite'}"}
    t0 = time.monotonic()
    subprocess.run([qa_agent, "import", str(csv)], env=scratch, check=True,
                   capture_output=True, timeout=600)
    whole = time.monotonic() - t0
    killed_while_running = 0
    for delay in (0.6 * whole, 0.8 * whole, 0.95 * whole):
        started = time.monotonic()
        proc = subprocess.Popen([qa_agent, "import", str(csv)], env=env,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if proc.poll() is None:
            killed_while_running += 1
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=120)
        stored = _counts(store_url)
        assert stored in (0, ROWS), (delay, stored, time.monotonic() - started)
        if stored == ROWS:
            break
    # At least one kill landed while the import was at work (else the test
    # proved nothing); the file is then imported whole by a plain re-run.
    assert killed_while_running >= 1
    done = subprocess.run([qa_agent, "import", str(csv)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert _counts(store_url) == ROWS
