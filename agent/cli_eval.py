"""``qa-agent eval``: the retrieval and agent evaluations on the eval/ sets."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from agent.cli_common import DataOpt, JsonOpt, build_agent, emit_json, run_command, say
from agent.config import get_settings

eval_app = typer.Typer(no_args_is_help=True, help="Evaluations on the eval/ sets.")


@eval_app.command("retrieval")
def eval_retrieval(
    questions: Annotated[Path | None, typer.Option(
        "--set", help="evaluation set (default eval/retrieval.yaml)")] = None,
    calibrate: Annotated[bool, typer.Option(
        help="first refit the relevance score on eval/retrieval_calibration.yaml "
             "and write knowledge/retrieval_calibration.json")] = False,
    as_json: JsonOpt = False,
) -> None:
    """hit@1, hit@5, MRR and rejection of unanswerable questions.

    Runs on its own index of the shipped corpus only (in <data_dir>/eval-index),
    so the department's documents do not change the figures.
    """

    def body() -> None:
        from agent.config import PROJECT_ROOT
        from agent.retrieval.evaluation import calibrate as fit
        from agent.retrieval.evaluation import evaluate, load_questions
        from agent.retrieval.index import KnowledgeIndex
        from agent.retrieval.search import CALIBRATION_FILE, HybridSearcher

        settings = get_settings().model_copy(update={
            "chroma_url": None, "chroma_path": get_settings().data_dir / "eval-index"})
        index = KnowledgeIndex(settings)
        index.sync([settings.corpus_dir], progress=False)
        searcher = HybridSearcher(index)
        if calibrate:
            cal_path = PROJECT_ROOT / "eval" / "retrieval_calibration.yaml"
            fitted = fit(searcher, load_questions(cal_path), cal_path.name)
            fitted.save(settings.knowledge_dir / CALIBRATION_FILE)
            searcher.calibration = fitted
            say(f"calibration written: {fitted.notes}")
        path = questions or PROJECT_ROOT / "eval" / "retrieval.yaml"
        report = evaluate(searcher, load_questions(path))
        if as_json:
            emit_json(report.as_dict())
        else:
            typer.echo(report.text())

    run_command(body, as_json, empty={})


@eval_app.command("agent")
def eval_agent(
    data: DataOpt = None,
    limit: Annotated[int | None, typer.Option(
        help="only the first N questions (a quick check)")] = None,
    every: Annotated[int, typer.Option(
        min=1, help="every K-th question of the three sets (a spread sample)")] = 1,
    out: Annotated[Path | None, typer.Option(
        help="also write the scores and failures as JSON to this file")] = None,
) -> None:
    """Routing, answer accuracy, citations, abstention, unsupported numbers, time.

    Runs on the configured backend over the demo fleet (written to
    <data_dir>/demo when --data is not given) and eval/agent_*.yaml.
    """

    def body() -> None:
        from agent.agent_eval import evaluate_agent, load_sets
        from agent.config import PROJECT_ROOT
        from agent.qa.demo import write_demo_fleet

        settings = get_settings()
        source = data or write_demo_fleet(settings.data_dir / "demo")["data"]
        agent = build_agent(settings, source)
        items = load_sets(PROJECT_ROOT / "eval")[::every]
        report = evaluate_agent(agent, items, limit)
        typer.echo(report.text())
        if out is not None:
            import dataclasses

            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(dataclasses.asdict(report), indent=1) + "\n")

    run_command(body, False)


@eval_app.command("requests")
def eval_requests(
    data: DataOpt = None,
    out: Annotated[Path | None, typer.Option(
        help="also write the scores and failures as JSON to this file")] = None,
) -> None:
    """Request understanding per kind: periods, events, onsets, out-of-tolerance
    days, projections, comparisons, families, clarifying questions, follow-ups.

    Runs on the configured backend over the demo fleet (written to
    <data_dir>/demo when --data is not given) and eval/agent_requests.yaml.
    """

    def body() -> None:
        from agent.config import PROJECT_ROOT
        from agent.qa.demo import write_demo_fleet
        from agent.request_eval import evaluate_requests, load_requests

        settings = get_settings()
        source = data or write_demo_fleet(settings.data_dir / "demo")["data"]
        agent = build_agent(settings, source)
        report = evaluate_requests(agent, load_requests(PROJECT_ROOT / "eval"))
        typer.echo(report.text())
        if out is not None:
            import dataclasses

            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(dataclasses.asdict(report), indent=1) + "\n")

    run_command(body, False)
