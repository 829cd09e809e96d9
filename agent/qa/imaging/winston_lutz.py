"""Winston-Lutz through pylinac: CAX-to-BB distances, isocentre sizes, BB shift.

Stored tests (mm): ``wl_max_cax_bb`` and ``wl_median_cax_bb`` (the largest
and median 2D distance of the field centre from the BB over the images),
``wl_gantry_iso_size`` (3D gantry isocentre diameter), ``wl_collimator_iso_size``
and ``wl_couch_iso_size`` (2D diameters; stored only when the set has images
at more than one collimator or couch angle) and ``wl_bb_shift`` (length of the
shift that puts the BB at the radiation isocentre; its components in
``extra``). A set must hold the four cardinal gantry angles at collimator and
couch 0 (``require_cardinal``): a set with one of them missing is refused
rather than analysed as a smaller set.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from pydantic import BaseModel

from agent.qa.imaging.common import ImageAnalysis, ImageSetResult, Metric
from agent.qa.imaging.inputs import ImageError

CARDINAL = (0.0, 90.0, 180.0, 270.0)


class WLImage(BaseModel):
    """One image of the set: its file, axes and CAX-to-BB distance (mm)."""

    file: str
    gantry: float
    collimator: float
    couch: float
    cax_to_bb_mm: float


class WinstonLutzData(ImageSetResult):
    """Winston-Lutz results (mm) with the images' provenance."""

    max_cax_bb_mm: float
    median_cax_bb_mm: float
    mean_cax_bb_mm: float
    gantry_iso_size_mm: float
    collimator_iso_size_mm: float
    couch_iso_size_mm: float
    bb_shift_mm: tuple[float, float, float]
    bb_shift_instructions: str
    images: list[WLImage]


def _angle(value: float) -> float:
    return round(float(value), 1) % 360.0


class WinstonLutzAnalysis(ImageAnalysis):
    """Winston-Lutz test of a set of EPID images (pylinac ``WinstonLutz``)."""

    kind = "wl"
    title = "Winston-Lutz"
    defaults: ClassVar[dict[str, Any]] = {"bb_size_mm": 5.0, "low_density_bb": False,
                                "open_field": False, "require_cardinal": True}

    def _run(self, parameters: dict[str, Any]) -> Any:
        from pylinac import WinstonLutz

        names = {str(f.path): f.name for f in self.images.files}
        try:
            wl = WinstonLutz(self.images.paths)
        except ValueError as exc:
            raise ImageError(f"{self.images.source}: not a Winston-Lutz set: "
                             f"{exc}") from None
        if parameters["require_cardinal"]:
            self._check_cardinal(wl, names)
        options = {k: parameters[k] for k in ("bb_size_mm", "low_density_bb",
                                              "open_field")}
        try:
            wl.analyze(**options)
        except Exception as exc:  # find the image pylinac could not read
            raise ImageError(self._which_image(wl, names, options, exc)) from None
        wl._names = names  # the files behind pylinac's images, for the result
        return wl

    def _check_cardinal(self, wl: Any, names: dict[str, str]) -> None:
        """Refuse a set that lacks one of the four cardinal gantry angles."""
        at_reference = [img for img in wl.images
                        if _angle(img.collimator_angle) == 0
                        and _angle(img.couch_angle) == 0]
        found = sorted({_angle(img.gantry_angle) for img in at_reference})
        missing = [g for g in CARDINAL if not any(
            min(abs(g - f), 360 - abs(g - f)) <= 3 for f in found)]
        if missing:
            shown = ", ".join(f"{g:g}" for g in found) or "none"
            raise ImageError(
                f"{self.images.source}: Winston-Lutz set incomplete: no image at "
                f"gantry {', '.join(f'{g:g}' for g in missing)} (collimator 0, "
                f"couch 0); found gantry {shown} in {len(wl.images)} image(s). "
                "Add the missing image, or pass require_cardinal=False "
                "(--any-angles) for a set that is meant to be smaller")

    def _which_image(self, wl: Any, names: dict[str, str], options: dict[str, Any],
                     exc: Exception) -> str:
        """The message for a failed analysis, naming the image that failed."""
        for img in wl.images:
            try:
                img.analyze(bb_size_mm=options["bb_size_mm"],
                            low_density_bb=options["low_density_bb"],
                            open_field=options["open_field"])
            except Exception as single:
                name = names.get(str(img.path), str(img.path))
                reason = str(single)
                if "disk" in reason.lower() or "bb" in reason.lower():
                    reason = (f"no BB of about {options['bb_size_mm']:g} mm found "
                              f"in the field ({reason})")
                return (f"{name}: {reason}; check the BB is in the field and "
                        "bb_size_mm (--bb-size) matches it")
        return f"{self.images.source}: pylinac could not analyse the set: {exc}"

    def _result(self, wl: Any) -> WinstonLutzData:
        data = wl.results_data()
        shift = wl.bb_shift_vector
        vector = (float(shift.x), float(shift.y), float(shift.z))
        images = [WLImage(file=wl._names.get(str(img.path), str(img.path)),
                          gantry=float(img.gantry_angle),
                          collimator=float(img.collimator_angle),
                          couch=float(img.couch_angle),
                          cax_to_bb_mm=float(img.cax2bb_distance))
                  for img in wl.images]
        fields = {
            "max_cax_bb_mm": float(data.max_2d_cax_to_bb_mm),
            "median_cax_bb_mm": float(data.median_2d_cax_to_bb_mm),
            "mean_cax_bb_mm": float(data.mean_2d_cax_to_bb_mm),
            "gantry_iso_size_mm": float(data.gantry_3d_iso_diameter_mm),
            "collimator_iso_size_mm": float(data.coll_2d_iso_diameter_mm),
            "couch_iso_size_mm": float(data.couch_2d_iso_diameter_mm),
            "bb_shift_mm": vector,
            "bb_shift_instructions": str(wl.bb_shift_instructions()),
            "images": images,
        }
        metrics = _metrics(fields, data)
        return WinstonLutzData(**self._provenance(), **fields, metrics=metrics)

    def _figure(self, out: Any) -> None:
        self.analysed.save_summary(out)


def _metrics(fields: dict[str, Any], data: Any) -> list[Metric]:
    """The stored tests: distances always, iso sizes where the set has them."""
    x, y, z = fields["bb_shift_mm"]
    out = [
        Metric(test="wl_max_cax_bb", value=fields["max_cax_bb_mm"], unit="mm",
               description="largest 2D CAX-to-BB distance"),
        Metric(test="wl_median_cax_bb", value=fields["median_cax_bb_mm"], unit="mm",
               description="median 2D CAX-to-BB distance"),
        Metric(test="wl_bb_shift", value=math.sqrt(x * x + y * y + z * z),
               unit="mm", description="BB shift to the radiation isocentre",
               extra={"shift_mm": {"x": x, "y": y, "z": z},
                      "instructions": fields["bb_shift_instructions"]}),
    ]
    if data.num_gantry_images > 1:
        out.append(Metric(test="wl_gantry_iso_size",
                          value=fields["gantry_iso_size_mm"], unit="mm",
                          description="3D gantry isocentre diameter"))
    if data.num_coll_images > 1:
        out.append(Metric(test="wl_collimator_iso_size",
                          value=fields["collimator_iso_size_mm"], unit="mm",
                          description="2D collimator isocentre diameter"))
    if data.num_couch_images > 1:
        out.append(Metric(test="wl_couch_iso_size",
                          value=fields["couch_iso_size_mm"], unit="mm",
                          description="2D couch isocentre diameter"))
    return out


__all__ = ["WLImage", "WinstonLutzAnalysis", "WinstonLutzData"]
