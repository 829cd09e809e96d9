"""``qa-agent image wl|picketfence|starshot|field PATH --machine M``.

Analyses an image set with pylinac (``agent/qa/imaging``) through the
engine, prints pylinac's results (or, with ``--json``, one document: the
typed result, the date used and what was stored), optionally writes
pylinac's PDF and annotated figure, and stores the metrics as measurements
unless ``--no-store``. Unusable images exit 2 with the file and the reason,
and nothing is stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from agent.cli_common import JsonOpt, emit_json, run_command, say
from agent.config import get_settings

image_app = typer.Typer(add_completion=False, no_args_is_help=True,
                        help="Image QA through pylinac: Winston-Lutz, picket "
                             "fence, starshot, field analysis.")

PathsArg = Annotated[list[Path], typer.Argument(
    help="a DICOM folder, a zip, or the image files")]
MachineReq = Annotated[str, typer.Option("--machine", "-m",
                                         help="the machine the images are of")]
DateOpt = Annotated[str | None, typer.Option(
    "--date", help="the set's date-time (default: the DICOM AcquisitionDate/"
    "Time, in the department's zone)")]
PdfOpt = Annotated[Path | None, typer.Option(
    "--pdf", help="write pylinac's PDF report of the set here")]
FigureOpt = Annotated[Path | None, typer.Option(
    "--figure", help="write pylinac's annotated figure (PNG) here")]
NoStoreOpt = Annotated[bool, typer.Option(
    "--no-store", help="analyse only; store nothing")]
EMPTY = {"kind": None, "result": None, "stored": None}


def _run(kind: str, paths: list[Path], machine: str, date: str | None,
         energy: str | None, as_json: bool, pdf: Path | None, figure: Path | None,
         no_store: bool, **parameters: Any) -> None:
    """The body every image command shares."""

    def body() -> None:
        from agent.engine import QAEngine

        engine = QAEngine(get_settings())
        source: Any = paths[0] if len(paths) == 1 else list(paths)
        run = engine.analyse_images(kind, source, machine, date=date, energy=energy,
                                    store=not no_store, **parameters)
        if pdf is not None:
            say(f"PDF written to {run.analysis.publish_pdf(pdf)}")
        if figure is not None:
            run.analysis.save_figure(figure)
            say(f"figure written to {figure}")
        if as_json:
            emit_json(run.document())
        else:
            typer.echo(run.text())

    run_command(body, as_json, empty=EMPTY)


@image_app.command("wl")
def wl(paths: PathsArg, machine: MachineReq, date: DateOpt = None,
       bb_size: Annotated[float, typer.Option(
           "--bb-size", help="BB diameter in mm")] = 5.0,
       any_angles: Annotated[bool, typer.Option(
           "--any-angles", help="accept a set without all four cardinal gantry "
           "angles")] = False,
       as_json: JsonOpt = False, pdf: PdfOpt = None, figure: FigureOpt = None,
       no_store: NoStoreOpt = False) -> None:
    """Winston-Lutz: CAX-to-BB distances, isocentre sizes, BB shift."""
    _run("wl", paths, machine, date, None, as_json, pdf, figure, no_store,
         bb_size_mm=bb_size, require_cardinal=not any_angles)


@image_app.command("picketfence")
def picketfence(paths: PathsArg, machine: MachineReq, date: DateOpt = None,
                tolerance: Annotated[float, typer.Option(
                    help="leaf error tolerance in mm")] = 0.5,
                mlc: Annotated[str, typer.Option(
                    help="MLC model as pylinac names it")] = "Millennium",
                as_json: JsonOpt = False, pdf: PdfOpt = None,
                figure: FigureOpt = None, no_store: NoStoreOpt = False) -> None:
    """Picket fence: largest and median leaf error, leaves passing."""
    _run("picketfence", paths, machine, date, None, as_json, pdf, figure, no_store,
         tolerance=tolerance, mlc=mlc)


@image_app.command("starshot")
def starshot(paths: PathsArg, machine: MachineReq, date: DateOpt = None,
             tolerance: Annotated[float, typer.Option(
                 help="wobble diameter tolerance in mm")] = 1.0,
             as_json: JsonOpt = False, pdf: PdfOpt = None,
             figure: FigureOpt = None, no_store: NoStoreOpt = False) -> None:
    """Starshot: wobble circle diameter."""
    _run("starshot", paths, machine, date, None, as_json, pdf, figure, no_store,
         tolerance=tolerance)


@image_app.command("field")
def field(paths: PathsArg, machine: MachineReq,
          energy: Annotated[str | None, typer.Option(
              "--energy", "-e", help="the beam, e.g. 6X (required)")] = None,
          date: DateOpt = None,
          fff: Annotated[bool, typer.Option("--fff", help="an FFF beam")] = False,
          as_json: JsonOpt = False, pdf: PdfOpt = None, figure: FigureOpt = None,
          no_store: NoStoreOpt = False) -> None:
    """Open field: flatness, symmetry, field size, penumbra (per beam)."""
    _run("field", paths, machine, date, energy, as_json, pdf, figure, no_store,
         is_FFF=fff)


__all__ = ["image_app"]
