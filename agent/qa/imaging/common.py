"""What every image analysis shares: the typed result, the base class, errors.

Each analysis (``winston_lutz``, ``picket_fence``, ``starshot``, ``field``)
is used the way pylinac's own classes are: construct it from the images,
call :meth:`ImageAnalysis.analyze`, then read :meth:`~ImageAnalysis.results`
(text), :meth:`~ImageAnalysis.results_data` (a typed pydantic object with
the metrics the store keeps and the provenance), and write
:meth:`~ImageAnalysis.save_figure` (pylinac's annotated image) or
:meth:`~ImageAnalysis.publish_pdf` (pylinac's PDF). Whatever pylinac raises
becomes an :class:`~agent.qa.imaging.inputs.ImageError` naming the images.
"""

from __future__ import annotations

import io
from abc import ABC, abstractmethod
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, Field

from agent.qa.imaging.inputs import (
    ImageError,
    ImageSet,
    acquisition_time,
    load_image_set,
)


class Metric(BaseModel):
    """One number of an analysis as the store keeps it (a test of the vocabulary)."""

    test: str
    value: float
    unit: str
    description: str = ""
    extra: dict[str, Any] = Field(default_factory=dict)


class ImageSetResult(BaseModel):
    """What every analysis reports beside its own numbers: provenance."""

    kind: str
    source: str
    files: list[str]
    images_sha256: str
    pylinac_version: str
    parameters: dict[str, Any]
    acquired: datetime | None = None
    acquired_from: str = ""
    acquired_zone: str = ""
    passed: bool | None = None
    metrics: list[Metric] = Field(default_factory=list)

    def metric(self, test: str) -> float:
        """The value of one metric by its test name."""
        return next(m.value for m in self.metrics if m.test == test)


def pylinac_version() -> str:
    """The installed pylinac's version (pinned in pyproject.toml)."""
    import pylinac

    return str(pylinac.__version__)


def quiet_matplotlib() -> None:
    """Draw off screen (no display on a server or in the tests)."""
    import matplotlib

    matplotlib.use("Agg")


class ImageAnalysis(ABC):
    """One image set analysed by pylinac.

    Parameters
    ----------
    source : str, Path or list of them
        A DICOM folder, a zip or image files (checked by
        :func:`~agent.qa.imaging.inputs.load_image_set`).
    """

    #: The CLI's name of the analysis (``qa-agent image KIND``).
    kind: ClassVar[str]
    #: What it is, in words.
    title: ClassVar[str]
    #: The analysis parameters and their defaults (pylinac's names).
    defaults: ClassVar[dict[str, Any]]

    def __init__(self, source: str | Path | list[str | Path]) -> None:
        quiet_matplotlib()
        self.images: ImageSet = load_image_set(source)
        self.parameters: dict[str, Any] = {}
        self._pylinac: Any = None
        self._data: ImageSetResult | None = None

    def analyze(self, **parameters: Any) -> ImageAnalysis:
        """Run pylinac with the defaults updated by ``parameters``; returns self.

        Raises
        ------
        ImageError
            The images cannot be analysed (no BB, no pickets, ...); the
            message names the images and what pylinac found wrong.
        """
        unknown = set(parameters) - set(self.defaults)
        if unknown:
            raise ImageError(f"{self.title}: unknown parameter(s) {sorted(unknown)}; "
                             f"known: {', '.join(self.defaults)}")
        self.parameters = {**self.defaults, **{k: v for k, v in parameters.items()
                                               if v is not None}}
        try:
            self._pylinac = self._run(self.parameters)
            self._data = self._result(self._pylinac)
        except ImageError:
            raise
        except Exception as exc:  # pylinac's own errors: say which images
            raise ImageError(self._failure(exc)) from None
        finally:
            self.images.close()
        return self

    def _failure(self, exc: Exception) -> str:
        """The message for an error pylinac raised while analysing."""
        return (f"{self.images.source}: pylinac could not analyse the "
                f"{self.title}: {exc}")

    @abstractmethod
    def _run(self, parameters: dict[str, Any]) -> Any:
        """Load and analyse with pylinac; return its analysed object."""

    @abstractmethod
    def _result(self, analysed: Any) -> ImageSetResult:
        """The typed result from pylinac's analysed object."""

    def _provenance(self) -> dict[str, Any]:
        """The fields every result has (for the subclasses' ``_result``)."""
        when, tag, zone = acquisition_time(self.images)
        return {"kind": self.kind, "source": self.images.source,
                "files": [f.name for f in self.images.files],
                "images_sha256": self.images.sha256,
                "pylinac_version": pylinac_version(),
                "parameters": {k: _plain(v) for k, v in self.parameters.items()},
                "acquired": when, "acquired_from": tag, "acquired_zone": zone}

    @property
    def analysed(self) -> Any:
        """pylinac's analysed object (``WinstonLutz``, ``PicketFence``, ...)."""
        if self._pylinac is None:
            raise ImageError(f"{self.title}: call analyze() first")
        return self._pylinac

    def results_data(self) -> ImageSetResult:
        """The typed result: metrics for the store, provenance, details."""
        if self._data is None:
            raise ImageError(f"{self.title}: call analyze() first")
        return self._data

    def results(self) -> str:
        """pylinac's results text, with the images and their digest."""
        data = self.results_data()
        head = [f"{self.title}: {len(data.files)} image(s), sha256 "
                f"{data.images_sha256[:12]}..., pylinac {data.pylinac_version}"]
        return "\n".join(head + [str(line) for line in self._pylinac_text()])

    def _pylinac_text(self) -> list[str]:
        return list(self.analysed.results(as_list=True))

    def save_figure(self, out: str | Path | io.BytesIO) -> str | Path | io.BytesIO:
        """Write pylinac's annotated figure (PNG) to a file or a stream."""
        import matplotlib.pyplot as plt

        self._figure(out)
        plt.close("all")
        return out

    def _figure(self, out: str | Path | io.BytesIO) -> None:
        self.analysed.save_analyzed_image(out)

    def publish_pdf(self, out: str | Path, notes: str | None = None) -> Path:
        """Write pylinac's PDF report of the set."""
        import matplotlib.pyplot as plt

        data = self.results_data()
        meta = {"Images": f"{len(data.files)}", "sha256": data.images_sha256[:16]}
        try:
            self.analysed.publish_pdf(str(out), notes=notes, metadata=meta)
        except OSError as exc:
            raise ImageError(f"{out}: cannot write the PDF ({exc.strerror})") from None
        finally:
            plt.close("all")
        return Path(out)


def _plain(value: Any) -> Any:
    """A parameter as JSON (an enum by its value)."""
    if hasattr(value, "value") and not isinstance(value, int | float | str):
        return value.value if isinstance(value.value, int | float | str) \
            else str(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


__all__ = ["ImageAnalysis", "ImageError", "ImageSetResult", "Metric",
           "pylinac_version", "quiet_matplotlib"]
