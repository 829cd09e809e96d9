"""Start the linac QA assistant: ``python app.py`` opens the Gradio app.

The same as ``qa-agent serve`` (see ``agent/ui/serve.py``): binds
127.0.0.1:7860 by default, imports the demo fleet into an empty store.
"""

from __future__ import annotations

import sys

from agent.ui.serve import serve

if __name__ == "__main__":
    sys.exit(serve())
