"""One settings object for the whole application.

Settings come, in increasing priority, from the defaults below, a TOML file
(``QA_AGENT_CONFIG`` or ``<data_dir>/qa-agent.toml``) and environment
variables named ``QA_AGENT_<FIELD>`` (for example ``QA_AGENT_DATABASE_URL``).
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from agent.errors import ServiceError

#: The repository (or installed tree) root: ``knowledge/`` lives here.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(ServiceError):
    """A configuration file or variable is not valid."""


class Settings(BaseModel):
    """Application settings; see the module docstring for where they come from."""

    data_dir: Path = Field(default=PROJECT_ROOT / "data")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default sqlite:///<data_dir>/qa.sqlite. "
        "PostgreSQL: postgresql+psycopg://user@127.0.0.1:5432/qa",
    )
    knowledge_dir: Path = Field(default=PROJECT_ROOT / "knowledge")
    documents_dir: Path | None = Field(
        default=None,
        description="Watch folder for the department's own documents; "
        "default <data_dir>/documents.",
    )
    chroma_path: Path | None = Field(
        default=None, description="On-disk Chroma; default <data_dir>/chroma."
    )
    chroma_url: str | None = Field(
        default=None,
        description="Chroma server (http://127.0.0.1:8000); unset = on disk.",
    )
    knowledge_collection: str = Field(default="linac-qa-knowledge",
                                      min_length=3, max_length=500)
    chunk_words: int = Field(default=150, ge=40, le=400)
    llm_backend: str = Field(
        default="auto", pattern="^(auto|ollama|embedded)$",
        description="auto: Ollama when it answers with ollama_model, else embedded.",
    )
    ollama_host: str = "http://127.0.0.1:11434"
    ollama_model: str = "qwen2.5:7b-instruct"
    llm_model: str = Field(
        default="qwen2.5-coder-1.5b",
        description="Embedded GGUF: qwen2.5-coder-1.5b (default) or -0.5b.",
    )
    llm_threads: int | None = Field(
        default=None, ge=1, le=256,
        description="llama.cpp threads; default: the CPU count.",
    )
    model_path: Path | None = Field(
        default=None, description="Folder of the embedded GGUF; <data_dir>/models."
    )
    watch_interval: float = Field(default=10.0, gt=0)
    default_machine_class: str = Field(
        default="IMRT",
        description="Class assumed for a machine missing from the registry.",
    )
    timezone: str = Field(
        default="",
        description="The department's time zone (IANA, e.g. Europe/Berlin): times "
        "written with an offset are converted to it. Empty: this machine's zone.",
    )
    data_watch_dirs: list[Path] = Field(
        default_factory=list,
        description="Folders the app imports QA data from as it arrives (an MPC "
        "TDS path, a Daily QA 3 export folder); in QA_AGENT_DATA_WATCH_DIRS "
        "separated by the path separator (':' on Linux).",
    )
    date_order: str = Field(
        default="iso", pattern="^(iso|day-first|month-first)$",
        description="How dates that are not ISO 8601 are read (never guessed).",
    )
    # SPC defaults: their reasons and references are in agent/qa/options.py
    # (AnalysisOptions); these settings override them for a department.
    baseline_points: int = 30
    min_baseline_points: int = 8
    run_rules: str = "nelson"
    ewma_lambda: float = 0.2
    ewma_L: float = 2.86
    cusum_k: float = 0.5
    cusum_h: float = 5.0
    sigma_from: str = Field(
        default="mean_mr", pattern="^(mean_mr|median_mr)$",
        description="Control-limit sigma from the mean moving range (the "
        "textbook chart) or the median (robust to a bad day in the baseline).")
    # The Gradio app (agent/ui).
    ui_host: str = Field(
        default="127.0.0.1",
        description="Address the app binds to; anything but loopback needs ui_auth.",
    )
    ui_port: int = Field(default=7860, ge=1, le=65535)
    ui_auth: str | None = Field(
        default=None,
        description="'user:password', or a file of such lines (one per user).",
    )
    max_upload_mb: float = Field(default=50.0, gt=0, le=2048)
    llm_concurrency: int = Field(
        default=1, ge=1, le=64,
        description="Chat requests answered at once (they share one model).",
    )

    @property
    def resolved_database_url(self) -> str:
        """The database URL, with the SQLite default filled in."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'qa.sqlite'}"

    @field_validator("data_watch_dirs", mode="before")
    @classmethod
    def _split_dirs(cls, value: object) -> object:
        if isinstance(value, str):
            return [p for p in value.split(os.pathsep) if p.strip()]
        return value

    def read_options(self, machine: str | None = None, **more: Any) -> Any:
        """How the importers read this department's files (``ReadOptions``);
        ``more``: other fields (the engine adds the registry's serials)."""
        from agent.qa.importers.records import ReadOptions

        return ReadOptions(timezone=self.timezone, date_order=self.date_order,
                           machine=machine, **more)

    @property
    def chroma_dir(self) -> Path:
        """Directory of the on-disk Chroma store."""
        return self.chroma_path or self.data_dir / "chroma"

    @property
    def model_dir(self) -> Path:
        """Where the embedded model's GGUF is assembled."""
        return self.model_path or self.data_dir / "models"

    @property
    def watch_dir(self) -> Path:
        """The department's document folder (ingested with the corpus)."""
        return self.documents_dir or self.data_dir / "documents"

    @property
    def corpus_dir(self) -> Path:
        """The shipped protocol corpus."""
        return self.knowledge_dir / "corpus"

    @property
    def cache_dir(self) -> Path:
        """Rebuildable caches (the keyword index)."""
        return self.data_dir / "cache"

    @property
    def tolerance_dir(self) -> Path:
        """Directory of the shipped tolerance tables."""
        return self.knowledge_dir / "tolerances"


_FIELDS = set(Settings.model_fields)
#: Addresses the app may bind to without authentication.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def ui_credentials(settings: Settings) -> list[tuple[str, str]]:
    """The users allowed into the app, from ``ui_auth``.

    ``ui_auth`` is either ``user:password`` or the path of a file holding one
    such line per user (blank lines and ``#`` comments ignored).

    Returns
    -------
    list of (str, str)
        Empty when ``ui_auth`` is unset.

    Raises
    ------
    ConfigError
        When the value or a line of the file is not ``user:password``.
    """
    raw = (settings.ui_auth or "").strip()
    if not raw:
        return []
    path = Path(raw).expanduser()
    if ":" not in raw or path.is_file():
        if not path.is_file():
            raise ConfigError(f"ui_auth: '{raw}' is neither user:password nor a "
                              "file of such lines")
        lines = [(n, line.strip()) for n, line in
                 enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)]
        where = [(f"{path}, line {n}", line) for n, line in lines
                 if line and not line.startswith("#")]
    else:
        where = [("ui_auth", raw)]
    users = []
    for place, line in where:
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise ConfigError(f"{place}: write user:password")
        users.append((user.strip(), password))
    if not users:
        raise ConfigError(f"ui_auth: {path} holds no user:password line")
    return users


def check_ui_binding(settings: Settings) -> list[tuple[str, str]]:
    """Refuse to serve the app beyond this machine without authentication.

    Returns
    -------
    list of (str, str)
        The credentials to require (empty on a loopback address without
        ``ui_auth``).

    Raises
    ------
    ConfigError
        When ``ui_host`` is not a loopback address and ``ui_auth`` is unset,
        or ``ui_auth`` is malformed.
    """
    users = ui_credentials(settings)
    host = settings.ui_host.strip().strip("[]").lower()
    if host not in LOOPBACK_HOSTS and not users:
        raise ConfigError(
            f"ui_host {settings.ui_host!r} would serve the app to the network "
            "without a login: set ui_auth (QA_AGENT_UI_AUTH='user:password' or a "
            "file of such lines) or bind to 127.0.0.1")
    return users


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Build the settings from the TOML file and the environment.

    Parameters
    ----------
    env : dict, optional
        Environment to read (default ``os.environ``); tests pass their own.

    Raises
    ------
    ConfigError
        When the TOML file cannot be parsed or a value has the wrong type.
    """
    env = dict(os.environ if env is None else env)
    values: dict[str, object] = {}
    data_dir = Path(env.get("QA_AGENT_DATA_DIR", PROJECT_ROOT / "data"))
    config_path = Path(env.get("QA_AGENT_CONFIG", data_dir / "qa-agent.toml"))
    if config_path.is_file():
        try:
            with config_path.open("rb") as handle:
                parsed = tomllib.load(handle)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: not valid TOML ({exc})") from None
        unknown = set(parsed) - _FIELDS
        if unknown:
            raise ConfigError(
                f"{config_path}: unknown setting(s) {sorted(unknown)}; "
                f"known: {sorted(_FIELDS)}"
            )
        values.update(parsed)
    for name in _FIELDS:
        key = f"QA_AGENT_{name.upper()}"
        if key in env:
            values[name] = env[key]
    values.setdefault("data_dir", data_dir)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(f"invalid setting: {exc}") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return load_settings()
