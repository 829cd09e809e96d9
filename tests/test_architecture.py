"""The layout rules of docs/architecture.md, checked on the source itself.

- no import cycle inside ``agent/`` (every import counts: at the top, inside a
  function, under ``TYPE_CHECKING``), so each module can be read after the
  ones it uses;
- ``agent/qa`` and ``agent/retrieval`` know nothing of LLMs, LangChain,
  Gradio or the agent above them;
- no module above 500 lines and no function above 60 lines unless a comment
  in it says why (``# why long: ...``);
- code comments cite the project's own files or the papers, never a path
  outside the repository.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "agent"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 60


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Modules of ``agent`` that a module imports, wherever the import stands."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from agent.qa import spc" imports the module agent.qa.spc.
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _cycle() -> list[str] | None:
    """One import cycle as a list of modules, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if state.get(nxt) is None and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if state.get(node) is None and (found := visit(node)):
            return found
    return None


def test_the_import_graph_is_read_from_the_source():
    # The checker itself must see the imports it is meant to judge.
    assert "agent.qa.result" in GRAPH["agent.qa.analysis"]
    assert "agent.engine" in GRAPH["agent.tools"]
    assert "agent.qa.presentation" in GRAPH["agent.qa.charts"]


def test_no_import_cycle_inside_agent():
    assert _cycle() is None, " -> ".join(_cycle() or [])


def test_a_cycle_would_be_found(monkeypatch):
    monkeypatch.setitem(GRAPH, "agent.qa.result",
                        GRAPH["agent.qa.result"] | {"agent.qa.analysis"})
    assert _cycle() is not None


ABOVE = ("agent.graph", "agent.nodes", "agent.tools", "agent.engine", "agent.ui",
         "agent.llm", "agent.cli", "agent.agent_eval", "agent.understanding",
         "agent.answers")
FOREIGN = re.compile(r"^\s*(import|from)\s+(langchain\w*|langgraph|gradio|"
                     r"xllamacpp|ollama)\b", re.M)


@pytest.mark.parametrize("layer", ["agent.qa", "agent.retrieval"])
def test_lower_layers_know_nothing_of_llms_ui_or_the_agent(layer):
    for name, path in MODULES.items():
        if not (name == layer or name.startswith(layer + ".")):
            continue
        upward = {m for m in GRAPH[name] if m.startswith(ABOVE)}
        assert not upward, f"{name} imports {sorted(upward)}"
        assert not FOREIGN.search(path.read_text(encoding="utf-8")), name


def test_no_module_above_the_size_limit():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text(encoding="utf-8").splitlines()))
            > MAX_MODULE_LINES}
    assert not long, f"modules above {MAX_MODULE_LINES} lines: {long}"


def test_no_long_function_without_a_reason():
    unexplained = []
    for name, path in MODULES.items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            size = node.end_lineno - node.lineno + 1
            body = "\n".join(lines[node.lineno - 1:node.end_lineno])
            if size > MAX_FUNCTION_LINES and "# why long:" not in body:
                unexplained.append(f"{name}.{node.name} ({size} lines)")
    assert not unexplained, "functions above 60 lines without '# why long:': " \
        + ", ".join(unexplained)


OUTSIDE = re.compile(r"(\.\./shared|shared/DESIGN|DESIGN\.md|FACTS\.md|"
                     r"/work/\w)")


def test_comments_cite_nothing_outside_the_repository():
    cited = []
    for path in MODULES.values():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if OUTSIDE.search(line):
                cited.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not cited, "\n".join(cited)
