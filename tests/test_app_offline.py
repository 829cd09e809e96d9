"""The served app opens no connection to anything but loopback.

``qa-agent serve`` runs under the same socket guard as the offline ingestion
test (any connect or DNS look-up of a non-loopback host is refused and
logged): start-up (demo import, model set-up, corpus indexing, Gradio), the
page and a drift question through gradio_client must leave the log empty.
"""

from __future__ import annotations

import subprocess
import sys
import time

from conftest import _free_port
from test_knowledge_index import GUARD

from agent.config import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "bench"))
from load_test import answers_http, expected_answer


def test_the_served_app_connects_to_nothing_but_loopback(tmp_path):
    attempts = tmp_path / "attempts.log"
    attempts.touch()
    port = _free_port()
    data = tmp_path / "data"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "QA_AGENT_DATA_DIR": str(data), "QA_AGENT_UI_PORT": str(port),
           "QA_AGENT_LLM_BACKEND": "embedded",
           "QA_AGENT_LLM_MODEL": "qwen2.5-coder-0.5b"}
    url = f"http://127.0.0.1:{port}/"
    with (tmp_path / "app.log").open("w") as out:
        app = subprocess.Popen([sys.executable, "-c", GUARD, str(attempts), "serve"],
                               cwd=PROJECT_ROOT, env=env, stdout=out,
                               stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 600
            while not answers_http(url):
                assert app.poll() is None, (tmp_path / "app.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "the app did not start"
                time.sleep(1)
            from gradio_client import Client

            client = Client(url, analytics_enabled=False, verbose=False,
                            download_files=False)
            history, *_ = client.predict("Is the 10 MV output on TrueBeam 2 "
                                         "drifting?", [], api_name="/respond")
        finally:
            app.terminate()
            app.wait(timeout=30)
    expected = expected_answer(data, {"machine": "TrueBeam2", "test": "output",
                                      "energy": "10X"})
    assert any(expected in str(m["content"]) for m in history)
    assert attempts.read_text() == ""
