"""Ten simultaneous conversations with the real app through gradio_client.

Each conversation is its own session with a question and a follow-up that
only its own memory can resolve ("and for 6X?"); every answer must be the
one the tools give for that conversation's request (computed here on the
same store), and protocol answers must come back cited. The fast 0.5B
embedded model serves the app; the time per answer under load is measured
by ``bench/load_test.py`` and quoted in the README, not asserted here.
"""

from __future__ import annotations

import sys

from agent.config import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT / "bench"))

from load_test import run_load, serve_app


def test_ten_simultaneous_conversations_each_get_their_own_answer(tmp_path):
    with serve_app(tmp_path, tmp_path / "app.log",
                   model="qwen2.5-coder-0.5b") as url:
        report = run_load(url, tmp_path, conversations=10)
    summary = report.summary()
    assert summary["answers"] == 18  # 8 conversations x 2 turns + 2 protocol
    assert summary["wrong"] == []
    assert len({a.conversation for a in report.answers}) == 10
