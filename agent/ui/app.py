"""The Blocks layout and the launch with protective defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

import agent.ui.chat as chat
import agent.ui.data as data
import agent.ui.knowledge as knowledge
import agent.ui.reports as reports
from agent.config import Settings, check_ui_binding
from agent.errors import QAAgentError, ServiceError, UserError
from agent.graph import Conversation
from agent.ui.common import (
    DATA_SUFFIXES,
    DOCUMENT_SUFFIXES,
    IMAGE_SUFFIXES,
    AppContext,
    start_app,
)

#: System fonts only: the default theme would fetch Google Fonts.
SANS = [gr.themes.Font("system-ui"), gr.themes.Font("Segoe UI"),
        gr.themes.Font("Helvetica"), gr.themes.Font("Arial"),
        gr.themes.Font("sans-serif")]
MONO = [gr.themes.Font("ui-monospace"), gr.themes.Font("DejaVu Sans Mono"),
        gr.themes.Font("Consolas"), gr.themes.Font("monospace")]
CSS = """
#passage { max-height: 520px; overflow-y: auto; }
footer { display: none !important; }
"""


def theme() -> gr.themes.Base:
    """The app's theme: Gradio's default look with local fonts."""
    return gr.themes.Default(font=SANS, font_mono=MONO)


def build_app(settings: Settings, app: AppContext | None = None) -> gr.Blocks:
    """The Gradio app: Chat, Data, Knowledge and Reports tabs.

    Parameters
    ----------
    settings : Settings
    app : AppContext, optional
        The engine to serve (tests pass one); default :func:`start_app`.

    Returns
    -------
    gr.Blocks
        Not launched; see :func:`launch` for the protective defaults.
    """
    app = app or start_app(settings)
    limit = settings.llm_concurrency
    with gr.Blocks(title="Linac QA assistant", analytics_enabled=False,
                   fill_width=True) as blocks:
        gr.Markdown(chat.header_markdown(app), elem_id="header")
        with gr.Tabs():
            with gr.Tab("Chat", id="chat"):
                _chat_tab(app, limit)
            with gr.Tab("Data", id="data") as data_page:
                *data_outputs, imported = _data_tab(app)
            with gr.Tab("Knowledge", id="knowledge"):
                knowledge_outputs = _knowledge_tab(app)
            with gr.Tab("Reports", id="reports"):
                machine_box = _reports_tab(app)

        def load_all() -> tuple[Any, ...]:
            machines = reports.machine_choices(app)
            return (data.on_hand_rows(app), data.fleet_rows(app),
                    data.image_set_rows(app), knowledge.document_rows(app),
                    gr.update(choices=knowledge.document_choices(app), value=None),
                    gr.update(choices=machines,
                              value=machines[0] if machines else None))

        def machines_now() -> Any:
            return gr.update(choices=reports.machine_choices(app))

        imported.then(machines_now, None, machine_box, queue=False)
        # The chat stores image sets too: their tables are fresh when the tab opens.
        data_page.select(lambda: (data.on_hand_rows(app), data.image_set_rows(app)),
                         None, [data_outputs[0], data_outputs[2]], queue=False)
        blocks.load(load_all, outputs=[*data_outputs, *knowledge_outputs,
                                       machine_box], queue=False)
    return blocks


def _chat_tab(app: AppContext, limit: int) -> None:
    # why long: Gradio layout: the components and their events read top to bottom as the
    # page shows them.
    conversation = gr.State(Conversation())
    citations = gr.State([])
    with gr.Row(equal_height=False):
        with gr.Column(scale=3):
            bot = gr.Chatbot(
                label="Chat", height=620, elem_id="chatbot", buttons=["copy"],
                examples=[{"text": e} for e in chat.EXAMPLES],
                placeholder="Ask about a QA protocol or tolerance, or ask for a "
                            "drift analysis of a machine's series.",
                feedback_options=None)
            with gr.Row():
                box = gr.Textbox(placeholder="Ask a question…", show_label=False,
                                 scale=6, elem_id="question", autofocus=True,
                                 max_length=2000)
                send = gr.Button("Send", variant="primary", scale=1,
                                 elem_id="send")
                images = gr.File(label="Images for image QA (DICOM or a zip)",
                                 file_count="multiple", type="filepath",
                                 file_types=list(IMAGE_SUFFIXES), scale=3,
                                 height=110, elem_id="image-upload")
            image_note = gr.Markdown(elem_id="image-upload-status")
            clear = gr.Button("New conversation", size="sm")
        with gr.Column(scale=2):
            gr.Markdown("#### Sources")
            picker = gr.Radio(choices=[], label="Citations of the latest answer",
                              type="value", elem_id="citations")
            passage = gr.Markdown(chat.passage_markdown(None), elem_id="passage")

    def respond(message: str, history: list[dict[str, Any]],
                memory: Conversation) -> Any:
        message = (message or "").strip()
        if not message:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        for turn in chat.stream_answer(app, message, history or [], memory):
            if not turn.done:
                yield turn.history, "", gr.skip(), gr.skip(), gr.skip()
                continue
            cites = turn.citations
            choices = chat.citation_choices(cites)
            yield (turn.history, "", cites,
                   gr.update(choices=choices, value=0 if choices else None),
                   chat.passage_markdown(cites[0] if cites else None, 1))

    outputs = [bot, box, citations, picker, passage]
    common = {"concurrency_limit": limit, "concurrency_id": "llm",
              "show_progress": "minimal"}
    box.submit(respond, [box, bot, conversation], outputs, **common)
    send.click(respond, [box, bot, conversation], outputs, **common)

    def example(evt: gr.SelectData, history: list[dict[str, Any]],
                memory: Conversation) -> Any:
        value = evt.value
        text = value.get("text", "") if isinstance(value, dict) else str(value)
        yield from respond(text, history, memory)

    bot.example_select(example, [bot, conversation], outputs, **common)

    def take(paths: list[str] | None, memory: Conversation) -> tuple[Any, str]:
        return memory, chat.take_uploads(app, paths, memory)

    images.change(take, [images, conversation], [conversation, image_note],
                  queue=False)

    def show(index: int | None, cites: list[dict[str, Any]]) -> str:
        if index is None or not 0 <= int(index) < len(cites):
            return chat.passage_markdown(None)
        return chat.passage_markdown(cites[int(index)], int(index) + 1)

    picker.change(show, [picker, citations], passage, queue=False)

    def reset() -> tuple[Any, ...]:
        return ([], Conversation(), [], gr.update(choices=[], value=None),
                chat.passage_markdown(None), None, "")

    clear.click(reset, None, [bot, conversation, citations, picker, passage,
                              images, image_note], queue=False)


def _data_tab(app: AppContext) -> tuple[Any, Any, Any, Any]:
    # why long: Gradio layout: the components and their events read top to bottom as the
    # page shows them.
    pending = gr.State(None)
    gr.Markdown("Upload a QA data file (CSV, XLSX, Daily QA 3 export). It is "
                "checked first; nothing is stored until you press **Import**.")
    with gr.Row():
        upload = gr.File(label="QA data file", file_types=list(DATA_SUFFIXES),
                         type="filepath", elem_id="data-upload", scale=3)
        with gr.Column(scale=2):
            machine = gr.Textbox(label="Machine (only for a wide file without a "
                                       "machine column)")
            mapping = gr.Textbox(label="Column mapping (ROLE=COLUMN per line; "
                                       "proposed for an export not recognised: "
                                       "check it, then Check file)", lines=3,
                                 elem_id="data-mapping")
            check = gr.Button("Check file", elem_id="data-check")
            commit = gr.Button("Import", variant="primary", interactive=False,
                               elem_id="data-import")
    report = gr.Markdown(elem_id="import-report")
    rejected = gr.Dataframe(headers=data.ERROR_HEADERS, label="Rejected rows",
                            interactive=False, wrap=True, visible=False,
                            elem_id="rejected-rows")
    gr.Markdown("#### On hand")
    on_hand = gr.Dataframe(headers=data.ON_HAND_HEADERS, interactive=False,
                           wrap=True, max_height=400, elem_id="on-hand",
                           column_widths=["11%", "7%", "9%", "9%", "9%", "18%", "37%"])
    gr.Markdown("#### Fleet, worst first (click a row for its control chart)")
    fleet = gr.Dataframe(headers=data.FLEET_HEADERS, interactive=False,
                         max_height=360, elem_id="fleet")
    verdict = gr.Markdown()
    plot = gr.Plot(label="Control chart", elem_id="fleet-chart")
    gr.Markdown("#### Image sets analysed with pylinac (newest first)")
    image_sets = gr.Dataframe(headers=data.IMAGE_SET_HEADERS, interactive=False,
                              max_height=300, elem_id="image-sets")

    def preview(path: str | None, name: str, pairs: str) -> tuple[Any, ...]:
        if not path:
            return (None, "", gr.update(visible=False, value=None),
                    gr.update(interactive=False), gr.skip())
        try:
            found = data.preview_import(app, path, name, pairs)
        except (UserError, OSError) as exc:  # InputError, UploadError
            proposal = "" if pairs.strip() else data.proposed_mapping(path)
            return (None, f"⚠ **Cannot import**: {exc}",
                    gr.update(visible=False, value=None),
                    gr.update(interactive=False), proposal or gr.skip())
        errors = found.error_rows()
        return (found, found.summary(),
                gr.update(visible=bool(errors), value=errors),
                gr.update(interactive=len(found.result.frame) > 0), gr.skip())

    preview_out = [pending, report, rejected, commit, mapping]
    upload.upload(preview, [upload, machine, mapping], preview_out)
    check.click(preview, [upload, machine, mapping], preview_out)

    def store(found: data.ImportPreview | None) -> tuple[Any, ...]:
        if found is None:
            return (None, "Check a file first.", gr.skip(), gr.skip(),
                    gr.update(interactive=False))
        try:
            done = data.commit_import(app, found)
        except QAAgentError as exc:  # StoreError and the like: say it
            return (found, f"⚠ **Import failed**: {exc}", gr.skip(), gr.skip(),
                    gr.update(interactive=True))
        return (None, f"✓ Imported. {done.summary()}", data.on_hand_rows(app),
                data.fleet_rows(app), gr.update(interactive=False))

    imported = commit.click(store, pending, [pending, report, on_hand, fleet, commit])

    def open_chart(evt: gr.SelectData) -> tuple[Any, str]:
        row = evt.row_value or []
        if len(row) < 3:
            return None, ""
        return data.series_chart(app, str(row[0]), str(row[1]), str(row[2] or ""))

    fleet.select(open_chart, None, [plot, verdict])
    if app.data_watch is not None:
        folders = ", ".join(str(p) for p in app.data_watch.folders)
        arrivals = gr.Markdown(f"Watching {folders} for new QA data.",
                               elem_id="data-arrivals")

        def arrive() -> tuple[Any, ...]:
            said = data.arrivals_markdown(app)
            if said is None:
                return gr.skip(), gr.skip(), gr.skip()
            return said, data.on_hand_rows(app), data.fleet_rows(app)

        gr.Timer(app.settings.watch_interval).tick(arrive, None,
                                                   [arrivals, on_hand, fleet])
    return on_hand, fleet, image_sets, imported


def _knowledge_tab(app: AppContext) -> tuple[Any, Any, Any]:
    # why long: Gradio layout: the components and their events read top to bottom as the
    # page shows them.
    gr.Markdown("The protocols and procedures the assistant cites. Uploaded "
                "documents go to the department folder "
                f"(`{app.settings.watch_dir}`).")
    documents = gr.Dataframe(headers=knowledge.DOCUMENT_HEADERS, interactive=False,
                             max_height=360, elem_id="documents")
    with gr.Row():
        with gr.Column():
            files = gr.File(label="Add documents", file_count="multiple",
                            file_types=list(DOCUMENT_SUFFIXES), type="filepath",
                            elem_id="doc-upload")
            add = gr.Button("Index uploaded documents", variant="primary",
                            elem_id="doc-add")
            sync = gr.Button("Re-index everything", elem_id="doc-reindex")
        with gr.Column():
            chosen = gr.Dropdown(label="Remove a document", choices=[],
                                 elem_id="doc-remove-choice")
            remove = gr.Button("Remove from the knowledge base", variant="stop",
                               elem_id="doc-remove")
    status = gr.Markdown(elem_id="doc-status")
    gr.Markdown("#### Search the knowledge base")
    with gr.Row():
        query = gr.Textbox(show_label=False, placeholder="Search the documents…",
                           scale=5, elem_id="doc-query")
        go = gr.Button("Search", scale=1, elem_id="doc-search")
    found = gr.Markdown(elem_id="doc-results")

    def listing() -> tuple[Any, Any]:
        return (knowledge.document_rows(app),
                gr.update(choices=knowledge.document_choices(app), value=None))

    def add_files(paths: list[str] | None,
                  progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008
                  ) -> tuple[Any, ...]:
        if not paths:
            return ("Choose documents first.", *listing(), None)
        progress(0, desc="Indexing")
        try:
            report, refused = knowledge.add_documents(app, list(paths),
                                                      progress=True)
        except QAAgentError as exc:  # KnowledgeIndexError, DocumentError: say so
            return (f"⚠ Indexing failed: {exc}", gr.skip(), gr.skip(), gr.skip())
        return (knowledge.ingest_summary(report, refused), *listing(), None)

    add.click(add_files, files, [status, documents, chosen, files])

    def resync(progress: gr.Progress = gr.Progress(track_tqdm=True),  # noqa: B008
               ) -> tuple[Any, ...]:
        progress(0, desc="Re-indexing")
        try:
            report = knowledge.reindex(app, progress=True)
        except QAAgentError as exc:  # KnowledgeIndexError, DocumentError: say so
            return (f"⚠ Re-indexing failed: {exc}", gr.skip(), gr.skip())
        return (knowledge.ingest_summary(report), *listing())

    sync.click(resync, None, [status, documents, chosen])

    def drop(path: str | None) -> tuple[Any, ...]:
        try:
            said = knowledge.remove_document(app, path or "")
        except QAAgentError as exc:  # KnowledgeIndexError, DocumentError: say so
            return (f"⚠ Removing failed: {exc}", gr.skip(), gr.skip())
        return (said, *listing())

    remove.click(drop, chosen, [status, documents, chosen])
    query.submit(lambda q: knowledge.search_markdown(app, q), query, found)
    go.click(lambda q: knowledge.search_markdown(app, q), query, found)
    return documents, chosen


def _reports_tab(app: AppContext) -> Any:
    gr.Markdown("A PDF QA report of one machine: every series with its verdict, "
                "control chart and the tolerances that apply.")
    with gr.Row():
        machine = gr.Dropdown(label="Machine", choices=[], elem_id="report-machine")
        start = gr.Textbox(label="Start (YYYY-MM-DD, empty: first measurement)",
                           elem_id="report-start")
        end = gr.Textbox(label="End (YYYY-MM-DD, empty: latest)",
                         elem_id="report-end")
    make = gr.Button("Make the PDF report", variant="primary", elem_id="report-make")
    message = gr.Markdown()
    pdf = gr.File(label="Report", interactive=False, elem_id="report-file")

    def run(name: str | None, first: str, last: str) -> tuple[Any, str]:
        try:
            path = reports.make_report(app, name, first, last)
        except UserError as exc:  # ReportError, SelectionError: what to change
            return None, f"⚠ {exc}"
        except ServiceError as exc:  # the store or a table cannot be used
            return None, f"⚠ The report could not be made: {exc}"
        return str(path), f"✓ {Path(path).name}"

    make.click(run, [machine, start, end], [pdf, message])
    return machine


def launch(settings: Settings, app: AppContext | None = None,
           prevent_thread_lock: bool = False) -> gr.Blocks:
    """Build and serve the app with the protective defaults.

    Binds ``ui_host:ui_port`` (127.0.0.1 by default) and refuses any other
    address unless ``ui_auth`` is set; no share link; analytics off; uploads
    limited to ``max_upload_mb``; chat answers queued with at most
    ``llm_concurrency`` at once.

    Raises
    ------
    ConfigError
        A non-loopback ``ui_host`` without ``ui_auth``, or a malformed
        ``ui_auth``.
    """
    users = check_ui_binding(settings)
    blocks = build_app(settings, app)
    blocks.queue(max_size=64, default_concurrency_limit=2)
    reports_dir = settings.data_dir / "reports"
    reports_dir.mkdir(parents=True, exist_ok=True)
    images_dir = settings.data_dir / "images"  # pylinac's figures, shown in the chat
    images_dir.mkdir(parents=True, exist_ok=True)
    blocks.launch(
        server_name=settings.ui_host, server_port=settings.ui_port, share=False,
        auth=users or None, auth_message="Linac QA assistant: sign in",
        max_file_size=int(settings.max_upload_mb * 1024 * 1024),
        allowed_paths=[str(reports_dir), str(images_dir)], show_error=False,
        ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False,
        inbrowser=False, theme=theme(), css=CSS,
        prevent_thread_lock=prevent_thread_lock, quiet=True)
    return blocks
