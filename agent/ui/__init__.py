"""The Gradio app: chat, data, knowledge and reports over the same engine.

The UI holds no analysis or retrieval logic: it calls the functions the CLI
calls (``agent.tools.run_tool``, ``read_measurements`` and
``MeasurementStore.import_result``, ``KnowledgeIndex.sync``/``remove``,
``HybridSearcher.search``, ``agent.qa.report.write_report``) and shows what
they return.

Nothing here reaches the internet: Gradio's analytics are switched off before
Gradio is imported, there is no share link, and the theme uses system fonts
(the default theme would fetch Google Fonts).
"""

from __future__ import annotations

import os

# Before anything imports gradio (or huggingface_hub): no analytics, no
# version check, no hub telemetry.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from agent.ui.app import build_app, launch
from agent.ui.common import AppContext, refresh, start_app

__all__ = ["AppContext", "build_app", "launch", "refresh", "start_app"]
