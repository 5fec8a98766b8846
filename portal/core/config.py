"""Settings: every knob is a `PORTAL_*` environment variable (see .env.example)."""

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

# The value shipped in .env.example; production refuses to start with it.
EXAMPLE_SECRET_KEY = "change-me-to-a-long-random-string"
MIN_METRICS_TOKEN_CHARS = 16


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PORTAL_", env_file=".env", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    secret_key: str = EXAMPLE_SECRET_KEY
    base_url: str = "http://127.0.0.1:8000"

    # Unset database/redis URLs mean "use the embedded servers in data_dir".
    database_url: str | None = None
    redis_url: str | None = None
    data_dir: Path = Path(".portal")

    storage_backend: Literal["local", "minio"] = "local"
    storage_local_dir: Path | None = None
    minio_endpoint: str = "127.0.0.1:9000"
    minio_access_key: str = "minioadmin"
    minio_secret_key: str = "minioadmin"
    minio_bucket: str = "portal"
    minio_secure: bool = False

    timezone: str = "UTC"
    # Pages read in the header's choice, else the browser's Accept-Language, else this.
    default_language: Literal["en", "ko"] = "en"
    max_upload_bytes: int = Field(default=1024 * 1024, gt=0)
    daily_submissions: int = Field(default=5, ge=0)
    final_picks: int = Field(default=2, ge=0)

    llm_upstream_url: str = "http://127.0.0.1:8001/v1"
    llm_upstream_key: str = ""
    # Each team's default LLM budgets; an admin overrides any of them per team.
    llm_rpm: int = Field(default=10, ge=0)
    llm_tokens_per_minute: int = Field(default=100_000, ge=0)
    llm_tokens_per_day: int = Field(default=2_000_000, ge=0)
    llm_max_parallel: int = Field(default=4, ge=0)
    # Models a team may call, separated by commas; empty: every model the upstream has.
    llm_models: str = ""
    # Completion tokens reserved for a call that sets no max_tokens.
    llm_default_max_tokens: int = Field(default=1024, gt=0)
    # How long a call's parallel slot outlives its process: a killed gateway frees its
    # slots after this; a live one renews them while each call is in flight (unless its
    # caller hung up) and frees them as each call ends.
    llm_lease_seconds: float = Field(default=150, gt=0)
    llm_connect_timeout_seconds: float = Field(default=5, gt=0)
    llm_read_timeout_seconds: float = Field(default=120, gt=0)
    llm_usage_flush_seconds: float = Field(default=0.5, gt=0)
    llm_auth_cache_seconds: float = Field(default=2, ge=0)

    # Origins allowed to embed /leaderboard/projector in a frame (CSP frame-ancestors
    # syntax, e.g. "https://signage.example.org"); unset: no page may frame any view.
    projector_frame_ancestors: str | None = None

    session_max_age_seconds: int = Field(default=7 * 24 * 3600, gt=0)
    login_failures_per_minute: int = Field(default=10, gt=0)
    log_level: str = "INFO"
    log_json: bool = True
    # `Authorization: Bearer <token>` that /metrics asks for; unset: /metrics refuses
    # everyone (`portal dev` makes one up and prints it).
    metrics_token: SecretStr | None = None

    worker_processes: int = Field(default=1, gt=0)
    worker_threads: int = Field(default=2, gt=0)

    # Evaluation. "auto" uses Docker when an engine answers, else (dev only) processes.
    eval_runner: Literal["auto", "docker", "process"] = "auto"
    # The process runner is not a sandbox: serve/worker refuse it unless this is set.
    eval_allow_process_runner: bool = False
    eval_kit: str = "worker.kits.tsp"
    eval_image: str = "portal-eval:latest"
    eval_network: str | None = None
    eval_llm_url: str | None = None
    eval_timeout_seconds: float = Field(default=20, gt=0)
    eval_memory_mib: int = Field(default=512, ge=16)
    eval_cpus: float = Field(default=1.0, gt=0)
    eval_pids_limit: int = Field(default=64, ge=8)
    eval_tmpfs_mib: int = Field(default=64, ge=1)
    eval_work_mib: int = Field(default=256, ge=1)
    eval_work_inodes: int = Field(default=10_000, ge=16)
    eval_log_cap_bytes: int = Field(default=64 * 1024, ge=1024)
    eval_answer_cap_bytes: int = Field(default=1024 * 1024, ge=1024)
    eval_max_attempts: int = Field(default=3, ge=1)
    eval_heartbeat_seconds: float = Field(default=2, gt=0)
    eval_stale_after_seconds: float = Field(default=30, gt=0)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name like Europe/Paris"
            ) from exc
        return value

    @property
    def llm_model_allowlist(self) -> tuple[str, ...] | None:
        """PORTAL_LLM_MODELS as names; None: every model."""
        names = tuple(dict.fromkeys(n.strip() for n in self.llm_models.split(",") if n.strip()))
        return names or None

    @field_validator("projector_frame_ancestors")
    @classmethod
    def _one_csp_directive_value(cls, value: str | None) -> str | None:
        if value is not None and any(char in value for char in ";,\r\n"):
            raise ValueError(
                "give only origins separated by spaces (no ';' or ','), "
                "e.g. 'https://signage.example.org'"
            )
        return value or None

    @field_validator("metrics_token")
    @classmethod
    def _long_enough_to_guess_never(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # compose passes an unset variable as ""
        if len(value.get_secret_value()) < MIN_METRICS_TOKEN_CHARS:
            raise ValueError(
                f"PORTAL_METRICS_TOKEN must have at least {MIN_METRICS_TOKEN_CHARS} "
                'characters; e.g. python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        return value

    @model_validator(mode="after")
    def _work_fits_in_memory(self) -> "Settings":
        # The sandbox's /work and /tmp are tmpfs, held in the run's memory; were they not
        # below the memory cap, a writer would be killed as out of memory before it ever
        # saw "disk full".
        if self.eval_work_mib + self.eval_tmpfs_mib >= self.eval_memory_mib:
            raise ValueError(
                f"PORTAL_EVAL_WORK_MIB ({self.eval_work_mib}) + PORTAL_EVAL_TMPFS_MIB "
                f"({self.eval_tmpfs_mib}) must stay below PORTAL_EVAL_MEMORY_MIB "
                f"({self.eval_memory_mib}): files in /work and /tmp are held in memory and "
                "count towards it; raise the memory or lower the file limits"
            )
        return self

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def cookies_secure(self) -> bool:
        return self.base_url.startswith("https://")

    @property
    def deployment_id(self) -> str:
        """Names this deployment's evaluation containers, from the database it runs on
        (never its password), so two portals or test sessions sharing one Docker engine
        never take each other's containers for leftovers."""
        if not self.database_url:
            return "embedded"
        url = make_url(self.database_url)
        where = f"{url.host or ''}:{url.port or ''}/{url.database or ''}?{url.query}"
        return hashlib.sha256(where.encode()).hexdigest()[:16]

    @property
    def local_storage_path(self) -> Path:
        return self.storage_local_dir or self.data_dir / "objects"

    @property
    def metrics_dir(self) -> Path:
        """Where the processes of this deployment keep their Prometheus values: one
        subdirectory per command (serve, worker, gateway, dev), all merged by a scrape."""
        return self.data_dir / "metrics"

    def check_safe_for_production(self) -> None:
        """Refuse to serve real users with the example secret or embedded services."""
        if not self.is_production:
            return
        if self.secret_key == EXAMPLE_SECRET_KEY or len(self.secret_key) < 32:
            raise RuntimeError(
                "PORTAL_SECRET_KEY is the example value or shorter than 32 characters; "
                "set a long random secret before running in production"
            )
        if not self.database_url or not self.redis_url:
            raise RuntimeError(
                "production needs PORTAL_DATABASE_URL and PORTAL_REDIS_URL; "
                "the embedded servers are for development only"
            )


@lru_cache
def get_settings() -> Settings:
    return Settings()
