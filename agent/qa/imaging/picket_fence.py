"""Picket fence through pylinac: leaf position errors against each picket.

Stored tests: ``picket_fence_max_error`` (mm, the largest distance of a leaf
pair's measured position from its picket's fitted line),
``picket_fence_median_error`` (mm, the median absolute error) and
``picket_fence_leaves_passing`` (%, leaf pairs within ``tolerance``). The
per-picket largest errors and offsets from the CAX are in the result and in
the stored ``extra`` of the maximum.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from agent.qa.imaging.common import ImageAnalysis, ImageSetResult, Metric
from agent.qa.imaging.inputs import ImageError


class PicketFenceData(ImageSetResult):
    """Picket fence results with the image's provenance."""

    tolerance_mm: float
    max_error_mm: float
    max_error_picket: int
    max_error_leaf: str
    median_error_mm: float
    percent_leaves_passing: float
    number_of_pickets: int
    picket_max_errors_mm: list[float]
    picket_offsets_mm: list[float]
    failed_leaves: list[str]


class PicketFenceAnalysis(ImageAnalysis):
    """Picket fence test of one EPID image (pylinac ``PicketFence``)."""

    kind = "picketfence"
    title = "picket fence"
    defaults: ClassVar[dict[str, Any]] = {"tolerance": 0.5, "action_tolerance": None,
                                "mlc": "Millennium", "num_pickets": None}

    def _run(self, parameters: dict[str, Any]) -> Any:
        from pylinac import PicketFence

        if len(self.images.files) != 1:
            raise ImageError(f"{self.images.source}: a picket fence is one image; "
                             f"found {len(self.images.files)}: "
                             + ", ".join(f.name for f in self.images.files))
        pf = PicketFence(self.images.paths[0], mlc=parameters["mlc"])
        pf.analyze(tolerance=parameters["tolerance"],
                   action_tolerance=parameters["action_tolerance"],
                   num_pickets=parameters["num_pickets"])
        return pf

    def _result(self, pf: Any) -> PicketFenceData:
        data = pf.results_data()
        per_picket = [max((float(np.max(np.abs(m.error))) for m in pf.mlc_meas
                           if m.picket_num == p), default=0.0)
                      for p in range(len(pf.pickets))]
        fields = {
            "tolerance_mm": float(data.tolerance_mm),
            "max_error_mm": float(data.max_error_mm),
            "max_error_picket": int(data.max_error_picket),
            "max_error_leaf": str(data.max_error_leaf),
            "median_error_mm": float(data.absolute_median_error_mm),
            "percent_leaves_passing": float(data.percent_leaves_passing),
            "number_of_pickets": int(data.number_of_pickets),
            "picket_max_errors_mm": per_picket,
            "picket_offsets_mm": [float(v) for v in data.offsets_from_cax_mm],
            "failed_leaves": [str(v) for v in data.failed_leaves],
        }
        metrics = [
            Metric(test="picket_fence_max_error", value=fields["max_error_mm"],
                   unit="mm", description="largest leaf error from its picket",
                   extra={"picket": fields["max_error_picket"],
                          "leaf": fields["max_error_leaf"],
                          "picket_max_errors_mm": [round(v, 4)
                                                   for v in per_picket],
                          "picket_offsets_mm": [round(v, 3) for v in
                                                fields["picket_offsets_mm"]]}),
            Metric(test="picket_fence_median_error", value=fields["median_error_mm"],
                   unit="mm", description="median absolute leaf error"),
            Metric(test="picket_fence_leaves_passing",
                   value=fields["percent_leaves_passing"], unit="%",
                   description=f"leaf pairs within {fields['tolerance_mm']:g} mm"),
        ]
        return PicketFenceData(**self._provenance(), **fields, metrics=metrics,
                               passed=bool(data.passed))


__all__ = ["PicketFenceAnalysis", "PicketFenceData"]
