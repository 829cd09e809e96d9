"""An image set as given: a DICOM folder, a zip or a list of files, checked.

Every file is read with pydicom before pylinac sees it, so a problem is
reported by file and by what is wrong (:class:`ImageError`, a user error):
not DICOM, a DICOM object that is not an image (a plan, a dose), an empty
folder or zip. The set's identity is the sha256 of its images' contents
(:func:`set_sha256`): the same images give the same digest whether they come
as a folder, a zip or single files, in any order and under any names.
"""

from __future__ import annotations

import hashlib
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path, PurePosixPath

from agent.errors import UserError
from agent.qa.store import file_sha256

#: Files a folder or a zip holds besides the images, skipped without comment.
IGNORED_NAMES = ("thumbs.db", "desktop.ini", ".ds_store")


class ImageError(UserError):
    """An image set cannot be analysed; the message names the file and why."""


@dataclass
class ImageFile:
    """One DICOM image of a set: where it is, its hash and its header."""

    path: Path
    name: str
    sha256: str
    acquired: datetime | None
    date_tag: str
    tz_offset: timedelta | None = None


@dataclass
class ImageSet:
    """The checked images of one analysis, and the folder they were put in."""

    source: str
    files: list[ImageFile]
    workdir: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def paths(self) -> list[str]:
        """The image files as strings (what pylinac takes)."""
        return [str(f.path) for f in self.files]

    @property
    def sha256(self) -> str:
        """The set's identity (:func:`set_sha256`)."""
        return set_sha256([f.sha256 for f in self.files])

    def close(self) -> None:
        """Remove the folder a zip was unpacked into."""
        if self.workdir is not None:
            self.workdir.cleanup()
            self.workdir = None


def set_sha256(digests: list[str]) -> str:
    """sha256 of a set of images: of their sorted content hashes.

    Parameters
    ----------
    digests : list of str
        The sha256 (hex) of each image file.

    Returns
    -------
    str
        The hex digest, independent of order, names and packaging.
    """
    return hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()




def _unzip(path: Path) -> tuple[list[Path], tempfile.TemporaryDirectory]:
    """The members of a zip, written to a temporary folder under safe names."""
    work = tempfile.TemporaryDirectory(prefix="qa-images-")
    out: list[Path] = []
    try:
        with zipfile.ZipFile(path) as archive:
            for n, info in enumerate(archive.infolist()):
                member = PurePosixPath(info.filename)
                if info.is_dir() or member.name.lower() in IGNORED_NAMES \
                        or "__MACOSX" in member.parts or member.name.startswith("."):
                    continue
                # A member is written under its number: no name leaves the folder.
                target = Path(work.name) / f"{n:05d}_{member.name[-80:]}"
                target.write_bytes(archive.read(info))
                out.append(target)
    except (zipfile.BadZipFile, OSError) as exc:
        work.cleanup()
        raise ImageError(f"{path}: not a readable zip file ({exc})") from None
    return out, work


def _candidates(paths: list[Path]) -> tuple[list[Path], tempfile.TemporaryDirectory
                                             | None]:
    """The files to read: a folder's files (recursively), a zip's members."""
    work = None
    files: list[Path] = []
    for path in paths:
        if not path.exists():
            raise ImageError(f"{path}: no such file or folder")
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file()
                            and p.name.lower() not in IGNORED_NAMES
                            and not p.name.startswith("."))
        elif zipfile.is_zipfile(path):
            if work is not None:
                raise ImageError(f"{path}: give one zip per image set")
            members, work = _unzip(path)
            files += members
        else:
            files.append(path)
    return files, work


def _header_time(ds, name: str) -> tuple[datetime | None, str]:
    """Acquisition (else content) date-time of a header, and the tag used."""
    for prefix in ("Acquisition", "Content"):
        day = str(getattr(ds, f"{prefix}Date", "") or "").strip()
        if len(day) != 8 or not day.isdigit():
            continue
        clock = str(getattr(ds, f"{prefix}Time", "") or "").strip().split(".")[0]
        clock = (clock + "000000")[:6] if clock.isdigit() else "000000"
        try:
            return datetime.strptime(day + clock, "%Y%m%d%H%M%S"), \
                f"{prefix}Date/{prefix}Time"
        except ValueError:
            raise ImageError(f"{name}: {prefix}Date {day!r} / {prefix}Time "
                             f"{clock!r} is not a date") from None
    return None, ""


def _tz_offset(ds) -> timedelta | None:
    """TimezoneOffsetFromUTC (``+1000``) of a header, or None."""
    text = str(getattr(ds, "TimezoneOffsetFromUTC", "") or "").strip()
    if len(text) != 5 or text[0] not in "+-" or not text[1:].isdigit():
        return None
    sign = 1 if text[0] == "+" else -1
    return sign * timedelta(hours=int(text[1:3]), minutes=int(text[3:]))


def read_image(path: Path, name: str) -> ImageFile:
    """Check one file is a DICOM image and read what the store needs.

    Raises
    ------
    ImageError
        When the file is not DICOM or holds no image.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path), stop_before_pixels=False)
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError) as exc:
        what = type(exc).__name__
        raise ImageError(f"{name}: not a DICOM file ({what}: {exc}); give DICOM "
                         "images (RT Image or EPID exports)") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        kind = str(getattr(ds, "Modality", "") or "unknown modality")
        raise ImageError(f"{name}: a DICOM file but not an image ({kind}, no pixel "
                         "data); give the EPID images of the test")
    acquired, tag = _header_time(ds, name)
    return ImageFile(path, name, file_sha256(path), acquired, tag, _tz_offset(ds))


def load_image_set(source: str | Path | list[str | Path]) -> ImageSet:
    """Every image of a DICOM folder, a zip or a list of files, checked.

    Parameters
    ----------
    source : str, Path or list of them
        A folder (read recursively), a zip of images, one file, or files.

    Returns
    -------
    ImageSet
        The images in name order; call ``close()`` when done (a zip's folder).

    Raises
    ------
    ImageError
        A file is not DICOM or not an image, or there is no file at all.
    """
    given = [Path(p) for p in source] if isinstance(source, list) else [Path(source)]
    label = ", ".join(str(p) for p in given)
    files, work = _candidates(given)
    try:
        if not files:
            raise ImageError(f"{label}: no files found; give a DICOM folder, a zip "
                             "or image files")
        images = []
        for path in files:
            name = _display_name(path, given, work)
            images.append(read_image(path, name))
    except ImageError:
        if work is not None:
            work.cleanup()
        raise
    return ImageSet(label, sorted(images, key=lambda f: f.name), work)


def _display_name(path: Path, given: list[Path],
                  work: tempfile.TemporaryDirectory | None) -> str:
    """How a file is named in messages: a zip member as ``zip:member``."""
    if work is not None and str(path).startswith(work.name):
        zipped = next(p for p in given if p.is_file() and zipfile.is_zipfile(p))
        return f"{zipped}:{path.name.split('_', 1)[1]}"
    return str(path)


def acquisition_time(images: ImageSet) -> tuple[datetime | None, str, str]:
    """The set's acquisition time (its first image's), the tag and the zone.

    A header with TimezoneOffsetFromUTC gives an instant, returned as a UTC
    time with ``zone`` "UTC" for the caller to convert; without it the time is
    the department's wall-clock time (``zone`` "department").
    """
    timed = [f for f in images.files if f.acquired is not None]
    if not timed:
        return None, "", ""
    first = min(timed, key=lambda f: f.acquired)  # type: ignore[arg-type, return-value]
    assert first.acquired is not None
    if first.tz_offset is not None:
        aware = first.acquired.replace(tzinfo=timezone(first.tz_offset))
        return aware.astimezone(UTC).replace(tzinfo=None), first.date_tag, \
            "UTC"
    return first.acquired, first.date_tag, "department"


__all__ = ["ImageError", "ImageFile", "ImageSet", "acquisition_time",
           "load_image_set", "read_image", "set_sha256"]
