"""Serve the app: what ``python app.py`` and ``qa-agent serve`` both run.

On a fresh machine (an empty measurement store) the demo fleet is written to
``<data_dir>/demo`` and imported, so there is something to look at. The app
binds ``ui_host:ui_port`` (127.0.0.1:7860 by default; see ``agent.config``)
and refuses a non-loopback address unless ``ui_auth`` is set.
"""

from __future__ import annotations

import sys

import agent.ui  # noqa: F401 - first: switches Gradio's analytics off
from agent.config import ConfigError, check_ui_binding, get_settings
from agent.qa.store import MeasurementStore, StoreError
from agent.retrieval.index import KnowledgeIndexError


def serve() -> int:
    """Set up, build and serve the app until Ctrl-C; return the exit code."""
    try:
        settings = get_settings()
        check_ui_binding(settings)  # before any slow set-up
        store = MeasurementStore(settings.resolved_database_url)
        if store.counts()["measurement"] == 0:
            from agent.qa.demo import write_demo_fleet

            paths = write_demo_fleet(settings.data_dir / "demo")
            print("empty measurement store: importing the demo fleet. "
                  + store.import_file(paths["data"]).summary(), file=sys.stderr)
        from agent.ui import launch, start_app

        app = start_app(settings)
        blocks = launch(settings, app, prevent_thread_lock=True)
        host = settings.ui_host
        shown = f"[{host}]" if ":" in host else host
        print(f"Linac QA assistant on http://{shown}:{settings.ui_port} "
              "(Ctrl-C stops)", flush=True)
        blocks.block_thread()
    except (ConfigError, StoreError, KnowledgeIndexError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    return 0
