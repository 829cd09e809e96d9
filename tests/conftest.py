"""Shared fixtures: tolerance tables, the demo fleet and real databases.

PostgreSQL is real: a throwaway cluster from Debian's postgresql package
(installed by scripts/test-setup.sh) is started on a free loopback port for the
test session and removed afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from agent.config import PROJECT_ROOT
from agent.qa.tolerances import ToleranceTables

ROOT = PROJECT_ROOT


@pytest.fixture(scope="session")
def tables() -> ToleranceTables:
    """The shipped tolerance tables and machine registry."""
    return ToleranceTables.load(ROOT / "knowledge" / "tolerances")


@pytest.fixture(scope="session")
def demo_fleet(tmp_path_factory) -> dict[str, Path]:
    """The demo fleet written once per session."""
    from agent.qa.demo import write_demo_fleet

    return write_demo_fleet(tmp_path_factory.mktemp("demo"))


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """URL of a throwaway PostgreSQL cluster on 127.0.0.1 (session scope)."""
    bindir = _pg_bin()
    if bindir is None:
        pytest.fail("PostgreSQL is not installed: run scripts/test-setup.sh "
                    "(it installs Debian's postgresql package)")
    workdir = Path(tempfile.mkdtemp(prefix="qa-pg-"))
    datadir = workdir / "data"
    port = _free_port()
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(workdir, "postgres")
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(datadir), "-A",
                    "trust", "-U", "postgres", "--no-sync"], check=True,
                   capture_output=True)
    options = (f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 "
               "-c fsync=off")
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(datadir), "-o",
                    options, "-l", str(workdir / "log"), "-w", "start"],
                   check=True, capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(datadir), "-m",
                        "immediate", "stop"], capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'qa.sqlite'}"
        return
    base = request.getfixturevalue("postgres_url")
    from sqlalchemy import create_engine, text

    name = f"t_{os.getpid()}_{abs(hash(request.node.nodeid)) % 10**8}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from sqlalchemy import create_engine as ce

        ce(url).dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def knowledge_settings(data_dir: Path, **overrides):
    """Settings whose Chroma store, cache and watch folder live in data_dir."""
    from agent.config import load_settings

    settings = load_settings({"QA_AGENT_DATA_DIR": str(data_dir)})
    return settings.model_copy(update=overrides) if overrides else settings


@pytest.fixture(scope="session")
def embedder():
    """The packaged all-MiniLM-L6-v2 (the real model, loaded once)."""
    from agent.retrieval.embeddings import get_embedder

    return get_embedder()


@pytest.fixture(scope="session")
def corpus_searcher(tmp_path_factory, embedder):
    """Hybrid search over the shipped corpus in a real on-disk Chroma."""
    from agent.retrieval.index import KnowledgeIndex
    from agent.retrieval.search import HybridSearcher

    settings = knowledge_settings(tmp_path_factory.mktemp("corpus-index"))
    index = KnowledgeIndex(settings, embedder=embedder)
    report = index.sync([settings.corpus_dir], progress=False)
    assert not report.errors, report.errors
    return HybridSearcher(index)


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory) -> Path:
    """The 0.5B GGUF assembled once from its installed part packages."""
    from agent.llm import ensure_model

    folder = tmp_path_factory.mktemp("models")
    settings = knowledge_settings(folder, model_path=folder)
    ensure_model(settings, "qwen2.5-coder-0.5b", progress=False)
    return folder
