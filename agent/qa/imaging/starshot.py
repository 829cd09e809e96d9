"""Starshot through pylinac: the wobble circle of the radiation spokes.

Stored test: ``starshot_wobble`` (mm, the diameter of the smallest circle
that touches every spoke, pylinac's ``circle_diameter_mm``). Several images
of one starshot (one per spoke) are summed first, as pylinac does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from agent.qa.imaging.common import ImageAnalysis, ImageSetResult, Metric


class StarshotData(ImageSetResult):
    """Starshot results with the images' provenance."""

    tolerance_mm: float
    wobble_diameter_mm: float
    wobble_center_px: tuple[float, float]
    spoke_angles_deg: list[float]


class StarshotAnalysis(ImageAnalysis):
    """Starshot of one image or of several summed (pylinac ``Starshot``)."""

    kind = "starshot"
    title = "starshot"
    defaults: ClassVar[dict[str, Any]] = {"tolerance": 1.0, "radius": 0.85,
                                "min_peak_height": 0.25, "fwhm": True}

    def _run(self, parameters: dict[str, Any]) -> Any:
        from pylinac import Starshot

        paths = self.images.paths
        star = (Starshot(paths[0]) if len(paths) == 1
                else Starshot.from_multiple_images(paths))
        star.analyze(radius=parameters["radius"],
                     min_peak_height=parameters["min_peak_height"],
                     tolerance=parameters["tolerance"], fwhm=parameters["fwhm"])
        return star

    def _result(self, star: Any) -> StarshotData:
        data = star.results_data()
        fields = {
            "tolerance_mm": float(data.tolerance_mm),
            "wobble_diameter_mm": float(data.circle_diameter_mm),
            "wobble_center_px": tuple(float(v) for v in data.circle_center_x_y),
            "spoke_angles_deg": [float(a) for a in data.angles],
        }
        metrics = [Metric(test="starshot_wobble", value=fields["wobble_diameter_mm"],
                          unit="mm", description="wobble circle diameter",
                          extra={"spokes": len(fields["spoke_angles_deg"])})]
        return StarshotData(**self._provenance(), **fields, metrics=metrics,
                            passed=bool(data.passed))

    def _pylinac_text(self) -> list[str]:
        return list(self.analysed.results(as_list=True))


__all__ = ["StarshotAnalysis", "StarshotData"]
