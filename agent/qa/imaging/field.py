"""Open-field analysis through pylinac: flatness, symmetry, field size, penumbra.

Stored tests, per beam energy (give it: flatness is trended per beam):
``field_flatness_x`` / ``_y`` and ``field_symmetry_x`` / ``_y`` (%, pylinac's
Varian protocol: flatness 100 (max - min) / (max + min) and the largest point
difference symmetry over the central 80% of the field; x is the image's
horizontal, cross-plane at collimator 0, y the vertical, in-plane),
``field_width_x`` / ``_y`` (cm, the field size at the 50% edges) and
``field_penumbra_x`` / ``_y`` (mm, the mean 20-80% penumbra of both edges).
"""

from __future__ import annotations

from typing import Any, ClassVar

from agent.qa.imaging.common import ImageAnalysis, ImageSetResult, Metric
from agent.qa.imaging.inputs import ImageError


class FieldData(ImageSetResult):
    """Field analysis results with the image's provenance."""

    flatness_x_pct: float
    flatness_y_pct: float
    symmetry_x_pct: float
    symmetry_y_pct: float
    field_size_x_mm: float
    field_size_y_mm: float
    penumbra_left_mm: float
    penumbra_right_mm: float
    penumbra_top_mm: float
    penumbra_bottom_mm: float


class FieldAnalysisRun(ImageAnalysis):
    """Flatness and symmetry of an open-field EPID image (pylinac FieldAnalysis)."""

    kind = "field"
    title = "field analysis"
    defaults: ClassVar[dict[str, Any]] = {"in_field_ratio": 0.8, "is_FFF": False,
                                "penumbra": (20, 80)}

    def _run(self, parameters: dict[str, Any]) -> Any:
        from pylinac import FieldAnalysis
        from pylinac.field_analysis import Protocol

        if len(self.images.files) != 1:
            raise ImageError(f"{self.images.source}: field analysis takes one "
                             f"image; found {len(self.images.files)}: "
                             + ", ".join(f.name for f in self.images.files))
        field = FieldAnalysis(self.images.paths[0])
        field.analyze(protocol=Protocol.VARIAN,
                      in_field_ratio=parameters["in_field_ratio"],
                      is_FFF=parameters["is_FFF"],
                      penumbra=tuple(parameters["penumbra"]))
        return field

    def _result(self, field: Any) -> FieldData:
        data = field.results_data()
        extra = data.protocol_results
        fields = {
            "flatness_x_pct": float(extra["flatness_horizontal"]),
            "flatness_y_pct": float(extra["flatness_vertical"]),
            "symmetry_x_pct": float(extra["symmetry_horizontal"]),
            "symmetry_y_pct": float(extra["symmetry_vertical"]),
            "field_size_x_mm": float(data.field_size_horizontal_mm),
            "field_size_y_mm": float(data.field_size_vertical_mm),
            "penumbra_left_mm": float(data.left_penumbra_mm),
            "penumbra_right_mm": float(data.right_penumbra_mm),
            "penumbra_top_mm": float(data.top_penumbra_mm),
            "penumbra_bottom_mm": float(data.bottom_penumbra_mm),
        }
        f = fields
        metrics = [
            Metric(test="field_flatness_x", value=f["flatness_x_pct"], unit="%"),
            Metric(test="field_flatness_y", value=f["flatness_y_pct"], unit="%"),
            Metric(test="field_symmetry_x", value=f["symmetry_x_pct"], unit="%"),
            Metric(test="field_symmetry_y", value=f["symmetry_y_pct"], unit="%"),
            # An absolute size, stored in cm: the store's mm tests are
            # deviations from a nominal position (at most 100 mm).
            Metric(test="field_width_x", value=f["field_size_x_mm"] / 10, unit="cm"),
            Metric(test="field_width_y", value=f["field_size_y_mm"] / 10, unit="cm"),
            Metric(test="field_penumbra_x", unit="mm",
                   value=(f["penumbra_left_mm"] + f["penumbra_right_mm"]) / 2,
                   extra={"left_mm": f["penumbra_left_mm"],
                          "right_mm": f["penumbra_right_mm"]}),
            Metric(test="field_penumbra_y", unit="mm",
                   value=(f["penumbra_top_mm"] + f["penumbra_bottom_mm"]) / 2,
                   extra={"top_mm": f["penumbra_top_mm"],
                          "bottom_mm": f["penumbra_bottom_mm"]}),
        ]
        return FieldData(**self._provenance(), **fields, metrics=metrics)

    def _pylinac_text(self) -> list[str]:
        return [str(line) for line in self.analysed.results(as_str=False)]


__all__ = ["FieldAnalysisRun", "FieldData"]
