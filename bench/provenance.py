"""What the benchmarks measured: the library code, recorded with each result;
and the profile summary they share."""

from __future__ import annotations

import cProfile
import hashlib
import io
import pstats
import subprocess
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def code_version() -> dict[str, Any]:
    """Which library code was measured: commit, local changes, content hash."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True,
                                  text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    digest = hashlib.sha256()
    for path in sorted((ROOT / "agent" / "qa").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    changed = git("status", "--porcelain", "--", "agent", "knowledge/tolerances")
    return {"commit": git("rev-parse", "--short", "HEAD"),
            "uncommitted_library_changes": changed.splitlines(),
            "agent_qa_sha256": digest.hexdigest()[:16]}


def profile_top(profiler: cProfile.Profile, key: str, top: int) -> list[dict]:
    """The ``top`` functions of a profile by ``cumtime`` or ``tottime``."""
    stats = pstats.Stats(profiler, stream=io.StringIO())
    rows = []
    for (file, line, name), (_cc, nc, tt, ct, _callers) in stats.stats.items():
        short = file
        for marker in ("site-packages/", "/work/main/", "python3.11/"):
            if marker in file:
                short = file.split(marker, 1)[1]
                break
        rows.append({"function": f"{short}:{line}({name})", "ncalls": nc,
                     "tottime": round(tt, 4), "cumtime": round(ct, 4)})
    rows.sort(key=lambda r: -r[key])
    return rows[:top]
