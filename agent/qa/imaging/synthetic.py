"""Test images of known geometry, made offline with pylinac's image generator.

For the tests, the benchmark and demonstrations: Winston-Lutz sets with a BB
offset, a picket fence with one leaf off its picket, a starshot whose spokes
miss the centre by a known distance, and an open field with a known linear
tilt. Each function returns the truth it built in, computed from the
geometry, not from pylinac's analysis. Images are small (an AS500 or AS1000
panel) so a set is made in a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

WL_CARDINAL = ((0, 0, 0), (90, 0, 0), (180, 0, 0), (270, 0, 0))
#: Cardinal gantry angles and two couch angles (images the generator makes at
#: a rotated collimator are not found by pylinac's BB detection).
WL_FULL = (*WL_CARDINAL, (0, 0, 90), (0, 0, 270))


def _simulator(panel: str, sid: float) -> Any:
    """An AS500 or AS1000 panel, or "small": 320 x 320 pixels of the AS1000's
    0.39 mm (12.5 cm square; enough for a Winston-Lutz field, and fast)."""
    from pylinac.core.image_generator import AS500Image, AS1000Image
    from pylinac.core.image_generator.simulators import Simulator

    class Small(Simulator):
        pixel_size = 0.390625
        shape = (320, 320)

    return {"AS500": AS500Image, "AS1000": AS1000Image, "small": Small}[panel](
        sid=sid)


def _dicom_date(when: str | None) -> dict[str, str]:
    """AcquisitionDate/Time tags for ``YYYY-MM-DD[ HH:MM[:SS]]``."""
    if not when:
        return {}
    day, _, clock = when.partition(" ")
    clock = (clock.replace(":", "") + "000000")[:6]
    return {"AcquisitionDate": day.replace("-", ""), "AcquisitionTime": clock}


def wl_set(folder: str | Path, left: float = 0.0, up: float = 0.0,
           inward: float = 0.0, axes: tuple = WL_CARDINAL, panel: str = "AS1000",
           sid: float = 1000.0, when: str | None = None,
           bb_size_mm: float = 5.0) -> dict[str, Any]:
    """A Winston-Lutz set with the BB off the isocentre by (left, up, in) mm.

    Returns
    -------
    dict
        ``files`` (paths) and the truth for images at couch 0: the 2D
        CAX-to-BB distance per image (gantry g sees the lateral and vertical
        offsets as ``left cos g + up sin g`` beside the longitudinal one),
        their max and median, and the 3D offset length.
    """
    from pylinac.core.image_generator import (
        GaussianFilterLayer,
        PerfectFieldLayer,
        generate_winstonlutz,
    )

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    names = generate_winstonlutz(
        _simulator(panel, sid), PerfectFieldLayer, str(folder), field_size_mm=(30, 30),
        final_layers=[GaussianFilterLayer(sigma_mm=1)], bb_size_mm=bb_size_mm,
        offset_mm_left=left, offset_mm_up=up, offset_mm_in=inward, image_axes=axes,
        tags=_dicom_date(when))
    distances = []
    for gantry, _, couch in axes:
        if couch:
            continue
        g = np.deg2rad(gantry)
        across = left * np.cos(g) + up * np.sin(g)
        distances.append(float(np.hypot(across, inward)))
    return {"files": [folder / n for n in names], "distances": distances,
            "max": max(distances), "median": float(np.median(distances)),
            "offset": float(np.sqrt(left ** 2 + up ** 2 + inward ** 2))}


def picket_fence(path: str | Path, leaf_error_mm: float = 0.0, picket: int = 2,
                 leaf_band_mm: tuple[float, float] = (10.0, 15.0),
                 pickets: int = 7, spacing_mm: float = 30.0,
                 when: str | None = None) -> dict[str, Any]:
    """A picket fence image whose picket ``picket`` is off by ``leaf_error_mm``
    over one leaf's band (a Millennium 5 mm leaf between 10 and 15 mm).

    Returns
    -------
    dict
        ``file``, the truth ``max_error`` (the leaf's offset from its picket),
        ``picket`` (its index) and the nominal picket positions.
    """
    from pylinac.core.image_generator import GaussianFilterLayer, PerfectFieldLayer

    sim = _simulator("AS1000", 1500.0)
    positions = [(i - (pickets - 1) / 2) * spacing_mm for i in range(pickets)]
    low, high = leaf_band_mm
    for i, x in enumerate(positions):
        if i != picket or not leaf_error_mm:
            sim.add_layer(PerfectFieldLayer(field_size_mm=(300, 3),
                                            cax_offset_mm=(0, x)))
            continue
        # The picket in three pieces: above the leaf, the leaf moved, below it.
        for top, bottom, shift in ((-150, low, 0.0), (low, high, leaf_error_mm),
                                   (high, 150, 0.0)):
            sim.add_layer(PerfectFieldLayer(
                field_size_mm=(bottom - top, 3),
                cax_offset_mm=((top + bottom) / 2, x + shift)))
    sim.add_layer(GaussianFilterLayer(sigma_mm=0.5))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sim.generate_dicom(str(path), tags=_dicom_date(when))
    return {"file": path, "max_error": abs(leaf_error_mm), "picket": picket,
            "positions": positions}


def starshot(path: str | Path, radius_mm: float = 0.0, spokes: int = 5,
             width_mm: float = 1.5, when: str | None = None) -> dict[str, Any]:
    """A starshot whose ``spokes`` (odd) lines each pass ``radius_mm`` from the
    centre, their normals evenly spread over 360 degrees.

    The smallest circle touching every line is then the circle of that radius
    (the signed distances of any centre from the lines average ``-radius``),
    so the truth ``wobble_diameter`` is ``2 radius_mm``.
    """
    from pylinac.core.image_generator.layers import ArrayLayer, GaussianFilterLayer

    if spokes % 2 == 0:
        raise ValueError("use an odd number of spokes")
    sim = _simulator("AS1000", 1000.0)
    rows, cols = sim.image.shape
    scale = sim.pixel_size / sim.mag_factor  # mm at the isocentre per pixel
    y, x = np.mgrid[0:rows, 0:cols].astype(float)
    x = (x - (cols / 2 - 0.5)) * scale
    y = (y - (rows / 2 - 0.5)) * scale
    image = np.zeros((rows, cols))
    for i in range(spokes):
        phi = 2 * np.pi * i / spokes
        distance = x * np.cos(phi) + y * np.sin(phi) - radius_mm
        image += np.exp(-0.5 * (distance / width_mm) ** 2)
    image = np.clip(image / image.max(), 0, 1) * 0.9 * np.iinfo(np.uint16).max
    sim.add_layer(ArrayLayer(image.astype(np.uint16)))
    sim.add_layer(GaussianFilterLayer(sigma_mm=0.3))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sim.generate_dicom(str(path), tags=_dicom_date(when))
    return {"file": path, "wobble_diameter": 2 * radius_mm}


def open_field(path: str | Path, slope_x: float = 0.0, size_mm: float = 150.0,
               blur_mm: float = 2.0, when: str | None = None) -> dict[str, Any]:
    """An open field tilted linearly across x by ``slope_x`` of its value over
    the image width (pylinac's ``SlopeLayer``), blurred by ``blur_mm``.

    Returns
    -------
    dict
        ``file`` and the truth from the profile ``1 + slope_x col / ncols``
        over the central 80% of the field: ``flatness_x`` =
        100 (max - min) / (max + min), ``symmetry_x`` = the largest point
        difference over the centre value (negative: the right side higher),
        flatness and symmetry in y 0, the size, and the 20-80% penumbra of a
        Gaussian-blurred edge (2 x 0.8416 ``blur_mm``).
    """
    from pylinac.core.image_generator import (
        GaussianFilterLayer,
        PerfectFieldLayer,
        SlopeLayer,
    )

    sim = _simulator("AS1000", 1000.0)
    cols = sim.image.shape[1]
    sim.add_layer(PerfectFieldLayer(field_size_mm=(size_mm, size_mm), alpha=0.8))
    sim.add_layer(GaussianFilterLayer(sigma_mm=blur_mm))
    if slope_x:
        sim.add_layer(SlopeLayer(slope_x=slope_x, slope_y=0.0))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sim.generate_dicom(str(path), tags=_dicom_date(when))
    half = 0.4 * size_mm * sim.mag_factor / sim.pixel_size  # 80% of the field, px
    centre = cols / 2 - 0.5
    low, mid, high = (1 + slope_x * (centre + d) / cols for d in (-half, 0, half))
    return {"file": path, "flatness_x": 100 * (high - low) / (high + low),
            "symmetry_x": 100 * (low - high) / mid, "flatness_y": 0.0,
            "symmetry_y": 0.0, "size": size_mm, "penumbra": 2 * 0.8416 * blur_mm}


__all__ = ["WL_CARDINAL", "WL_FULL", "open_field", "picket_fence", "starshot",
           "wl_set"]
