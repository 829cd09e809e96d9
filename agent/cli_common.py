"""What the ``qa-agent`` commands share: output, error mapping, options.

``_run`` maps the project's two kinds of error (``agent.errors``) to exit
codes: a :class:`~agent.errors.UserError` exits 2, a
:class:`~agent.errors.ServiceError` 1; anything else is an internal error,
reported in one line (``QA_AGENT_DEBUG=1`` shows the traceback).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from agent.errors import QAAgentError
from agent.qa.selection import SelectionError as UsageError

if TYPE_CHECKING:  # pragma: no cover
    from agent.config import Settings


def say(message: str) -> None:
    typer.echo(message, err=True)


def emit_json(document: dict) -> None:
    sys.stdout.write(json.dumps(document, indent=1, default=str) + "\n")


def run_command(func, as_json: bool, empty: dict | None = None) -> None:
    """Run a command body, turning known problems into messages and exit codes.

    With ``--json`` a failed command still prints one document: ``empty``
    (the command's document with nothing in it) plus ``errors``.
    """
    if empty is None:
        empty = {"series": []}

    def fail(exc: Exception, code: int) -> typer.Exit:
        if as_json:
            emit_json({**empty, "errors": [{"file": None, "line": None,
                                             "column": None,
                                             "reason": str(exc)}]})
        say(f"error: {exc}")
        return typer.Exit(code)

    try:
        func()
    except QAAgentError as exc:  # UserError: 2, ServiceError: 1 (agent.errors)
        raise fail(exc, exc.exit_code) from None
    except typer.Exit:
        raise
    except Exception as exc:  # last resort: a message, not a traceback
        if os.environ.get("QA_AGENT_DEBUG"):
            raise
        say(f"internal error: {type(exc).__name__}: {exc} "
             "(set QA_AGENT_DEBUG=1 for details)")
        raise typer.Exit(1) from None


DataOpt = Annotated[Path | None, typer.Option("--data", help="CSV/XLSX file to "
                                              "analyse instead of the store")]
MachineOpt = Annotated[str | None, typer.Option("--machine", "-m")]
TestOpt = Annotated[str | None, typer.Option("--test", "-t")]
EnergyOpt = Annotated[str | None, typer.Option("--energy", "-e")]
StartOpt = Annotated[str | None, typer.Option("--start", help="first date")]
EndOpt = Annotated[str | None, typer.Option("--end", help="last date")]
JsonOpt = Annotated[bool, typer.Option("--json", help="one JSON document on stdout")]


def build_agent(settings: Settings, data: Path | None):
    """The agent on the configured LLM backend (the CLI and UI share this).

    The backend is chosen and reported now; the model is made when a request
    first needs it (a tolerance look-up the rules settle never does).
    """
    from agent.engine import QAEngine
    from agent.graph import Agent
    from agent.llm import chat_model
    from agent.tools import ToolContext

    llm, backend, model = chat_model(settings, lazy=True)
    return Agent(llm, ToolContext(engine=QAEngine(settings, data)), backend, model)


__all__ = [
    "DataOpt",
    "EndOpt",
    "EnergyOpt",
    "JsonOpt",
    "MachineOpt",
    "StartOpt",
    "TestOpt",
    "UsageError",
    "build_agent",
    "emit_json",
    "run_command",
    "say",
]
