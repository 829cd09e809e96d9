"""Image QA through pylinac: Winston-Lutz, picket fence, starshot, field analysis.

One module per analysis (``winston_lutz``, ``picket_fence``, ``starshot``,
``field``), each used like pylinac's own classes (load, ``analyze()``,
``results()``, ``results_data()``, figure, PDF); :mod:`.inputs` checks the
images, :mod:`.records` stores the results as measurements with their
provenance, :mod:`.synthetic` makes test images with pylinac's image
generator. :func:`analyse_images` is the one entry point the engine uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.qa.imaging.common import ImageAnalysis, ImageSetResult, Metric
from agent.qa.imaging.field import FieldAnalysisRun
from agent.qa.imaging.inputs import ImageError
from agent.qa.imaging.picket_fence import PicketFenceAnalysis
from agent.qa.imaging.records import When, resolve_date, store_result
from agent.qa.imaging.starshot import StarshotAnalysis
from agent.qa.imaging.winston_lutz import WinstonLutzAnalysis
from agent.qa.importers import ReadOptions
from agent.qa.store import ImportReport, MeasurementStore
from agent.vocabulary import canonical_energy

#: The analyses by their command-line name.
ANALYSES: dict[str, type[ImageAnalysis]] = {
    cls.kind: cls for cls in (WinstonLutzAnalysis, PicketFenceAnalysis,
                              StarshotAnalysis, FieldAnalysisRun)}
#: The metric of each analysis that its control chart shows (the chat's).
MAIN_METRICS: dict[str, str] = {"wl": "wl_max_cax_bb",
                                "picketfence": "picket_fence_max_error",
                                "starshot": "starshot_wobble",
                                "field": "field_flatness_x"}


@dataclass
class ImageRun:
    """One analysed image set: the analysis, when it is dated, what was stored."""

    analysis: ImageAnalysis
    machine: str
    energy: str
    when: When
    report: ImportReport | None

    @property
    def data(self) -> ImageSetResult:
        """The typed result."""
        return self.analysis.results_data()

    def document(self) -> dict[str, Any]:
        """The ``qa-agent image --json`` document."""
        return {"kind": self.analysis.kind, "machine": self.machine,
                "energy": self.energy, "date": self.when.date.isoformat(),
                "date_source": self.when.source, "timezone": self.when.zone,
                "result": self.data.model_dump(mode="json"),
                "stored": None if self.report is None else self.report.as_dict(),
                "errors": []}

    def text(self) -> str:
        """pylinac's results, the date used and what was stored."""
        lines = [self.analysis.results(),
                 f"Machine {self.machine}"
                 + (f", {self.energy}" if self.energy else "")
                 + f"; dated {self.when.date} ({self.when.source}, "
                 f"{self.when.zone})"]
        if self.report is None:
            lines.append("Not stored (--no-store).")
        elif self.report.already_imported:
            lines.append("Already stored (same images, by sha256); nothing added.")
        else:
            lines.append(f"Stored {self.report.added} measurement(s): "
                         + ", ".join(m.test for m in self.data.metrics))
        return "\n".join(lines)


def analyse_images(kind: str, source: str | Path | list[str | Path], machine: str,
                   options: ReadOptions, store: MeasurementStore | None = None,
                   date: str | None = None, energy: str | None = None,
                   **parameters: Any) -> ImageRun:
    """Analyse an image set and store its metrics (``store`` None: not stored).

    Parameters
    ----------
    kind : {"wl", "picketfence", "starshot", "field"}
    source : str, Path or list
        A DICOM folder, a zip or image files.
    machine : str
        The machine the images are of (canonical name).
    options : ReadOptions
        The department's zone and date order (for ``date`` and the headers).
    store : MeasurementStore, optional
    date : str, optional
        The set's date-time; default the DICOM AcquisitionDate/Time.
    energy : str, optional
        The beam ("6X"); required for a field analysis.
    **parameters
        Analysis parameters (each analysis's ``defaults``).

    Raises
    ------
    ImageError
        Unknown kind or energy, unusable images, no date; nothing is stored.
    """
    if kind not in ANALYSES:
        raise ImageError(f"unknown image analysis {kind!r}; use one of "
                         + ", ".join(ANALYSES))
    beam = canonical_energy(energy) if energy else ""
    if energy and not beam:
        raise ImageError(f"energy {energy!r} not recognised; write e.g. 6X, 10FFF")
    if kind == "field" and not beam:
        raise ImageError("field analysis needs the beam energy (--energy 6X): "
                         "flatness and symmetry are trended per beam")
    if not machine or not machine.strip():
        raise ImageError("give the machine the images are of (--machine)")
    analysis = ANALYSES[kind](source).analyze(**parameters)
    when = resolve_date(analysis.results_data(), date, options)
    report = (None if store is None else
              store_result(store, analysis.results_data(), machine, when, beam))
    return ImageRun(analysis, machine, beam or "", when, report)


__all__ = ["ANALYSES", "MAIN_METRICS", "ImageAnalysis", "ImageError", "ImageRun",
           "ImageSetResult", "Metric", "analyse_images"]
