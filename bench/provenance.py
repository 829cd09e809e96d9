"""What the benchmarks measured: the library code, recorded with each result."""

from __future__ import annotations

import hashlib
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
