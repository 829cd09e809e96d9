"""The Gradio app: chat, data, knowledge and reports over the same engine.

The UI holds no analysis or retrieval logic: it calls the engine the CLI
calls (``agent.engine.QAEngine``: analyse, fleet, data on hand, import,
report; ``KnowledgeIndex.sync``/``remove`` and ``HybridSearcher.search`` for
documents) and shows what it returns, worded by ``agent.qa.presentation``.

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
