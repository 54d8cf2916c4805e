"""Runtime settings: one pydantic model read from the environment once per container.

Nothing else in the package reads ``os.environ``; everything receives a :class:`Settings`.
"""

from __future__ import annotations

import functools
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_HS256_SECRET_BYTES = 32
"""RFC 7518 §3.2: an HS256 key must be at least as long as the hash output (256 bits)."""


class SettingsError(RuntimeError):
    """Raised at start-up when an environment variable holds an invalid value."""


class Settings(BaseSettings):
    """Every knob of the backend, each read from the environment variable of the same name.

    Attributes:
        model_provider: ``local`` (offline responder), ``bedrock``, ``ollama`` (an Ollama server) or
            ``openai`` (any OpenAI-compatible server: llama.cpp's ``llama-server``, vLLM, LM Studio).
            Defaults to ``bedrock`` when ``MODEL_ARN`` or ``MODEL_ID`` is set, else ``local``.
            ``ollama`` and ``openai`` need the optional extra of the same name, never deployed.
        model_arn: Bedrock model or inference-profile ARN; wins over ``model_id``.
        model_id: Bedrock model id or inference-profile id.
        model_max_tokens: Maximum tokens per model response (Bedrock, Ollama, OpenAI-compatible).
        model_max_attempts: Total model attempts on throttling before the run fails.
        ollama_host: Ollama server URL (``ollama`` provider).
        ollama_model: Ollama model name, for example ``qwen2.5:7b-instruct`` (required with
            ``ollama``).
        openai_base_url: Base URL of the OpenAI-compatible API, up to and including ``/v1``
            (required with ``openai``).
        openai_model: Model name the server knows (required with ``openai``).
        openai_api_key: Bearer token for the server; empty when it needs none. Never logged.
        knowledge_base_id: Bedrock Knowledge Base id; empty means the bundled local knowledge base.
        knowledge_base_results: Passages returned per knowledge-base search.
        aws_region: Region for every AWS client.
        connections_table: DynamoDB table of connections; empty means the SQLite store.
        sqlite_path: SQLite file used when ``connections_table`` is empty.
        connection_ttl_seconds: TTL of connection records ($disconnect is best effort in AWS).
        websocket_management_endpoint: ``https://{apiId}.execute-api.{region}.amazonaws.com/{stage}``
            or the local gateway's; when empty it is built from the event.
        management_connect_timeout: Seconds to connect to the management API.
        management_read_timeout: Seconds to read a management API answer.
        post_max_attempts: PostToConnection attempts on 429 before the run stops.
        stream_flush_ms: Delta coalescing window after the first delta, in milliseconds.
        stream_flush_max_ms: Upper bound the window grows to on long answers, in milliseconds.
        stream_max_frame_chars: Characters of answer text in one delta frame at most.
        local_model_token_delay_ms: Pause between tokens of the offline responder, in milliseconds.
        local_model_min_answer_tokens: Pad offline answers to at least this many tokens (load tests).
        local_model_tokens_per_delta: Tokens per streamed text chunk of the offline responder.
        agent_max_turns: Model turns one query may take.
        log_level: Powertools log level.
        service_name: Service name in logs and the ``service`` dimension of every metric.
        metrics_output: Where the per-invocation metrics (CloudWatch EMF) go: ``auto`` (stdout
            inside AWS Lambda, where CloudWatch Logs extracts them, else one DEBUG log line per
            document), ``stdout``, ``log`` (DEBUG log lines) or ``off``.
        metrics_file: Append the EMF documents to this file instead (one JSON document a line;
            local use, tests and benchmarks). Wins over ``metrics_output`` unless that is ``off``.
        tracing: OpenTelemetry traces through Strands' own instrumentation: ``off`` (nothing is
            imported or set up), ``console`` (spans printed to stdout) or ``otlp`` (exported to
            ``OTEL_EXPORTER_OTLP_ENDPOINT``; needs the optional ``tracing`` extra). Only the
            invocations that execute a run ever set it up.
        lambda_runtime_api: Set by the Lambda runtime (``AWS_LAMBDA_RUNTIME_API``); tells
            ``metrics_output=auto`` it runs in Lambda.
        run_mode: ``inline`` runs the agent in the route's invocation; ``async`` hands it to an
            asynchronous invocation of the same function.
        function_name: The function to invoke for ``async`` runs (Lambda sets it).
        lambda_endpoint: Lambda API endpoint override (the local gateway sets it).
        run_claim_ttl_seconds: How long a running request's claim lives if its run dies silently.
        run_log_ttl_seconds: How long a run and its frame log stay readable after the run ends.
        run_poll_ms: How often a running run checks for a cancel request or a resumed connection.
        session_ttl_seconds: How long a conversation is kept after its last turn (30 days).
        session_max_turns: Turns of a conversation in the model's context, the current question
            included; older turns stay stored (``GET /sessions/{id}``) but leave the prompt.
        auth_mode: ``none`` (anyone may connect) or ``jwt`` (``$connect`` and ``POST /invoke`` need
            a valid JWT).
        auth_jwks_url: JWKS of the token issuer (Cognito:
            ``https://cognito-idp.{region}.amazonaws.com/{poolId}/.well-known/jwks.json``).
        auth_issuer: Required ``iss`` claim (checked whenever set; required with a JWKS URL).
        auth_audience: Required ``aud`` claim, or ``client_id`` when the token has no ``aud``
            (Cognito access tokens); checked whenever set, required with a JWKS URL.
        auth_hs256_secret: Shared HS256 secret for local use (``selador token`` signs with it);
            used only when no JWKS URL is set.
        limit_concurrent_per_connection: Queries running at once on one connection (0: no limit).
        limit_queries_per_minute: Queries one connection may start per calendar minute (0: no limit).
        limit_running_answers: Answers generating at once across the whole service, whoever asked
            (0: no limit); keep it below the function's concurrency so handshakes always fit.
        limit_daily_queries_per_principal: Queries one authenticated principal may start per UTC day
            (0: no limit; anonymous connections have no principal and no budget).
    """

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    model_provider: Literal["local", "bedrock", "ollama", "openai"] | None = None
    model_arn: str = ""
    model_id: str = ""
    model_max_tokens: int = Field(default=4096, ge=1, le=200_000)
    model_max_attempts: int = Field(default=3, ge=1, le=10)

    # Optional local providers (extras `ollama` / `openai`); never set in the deployed template.
    ollama_host: str = "http://127.0.0.1:11434"
    ollama_model: str = ""
    openai_base_url: str = ""
    openai_model: str = ""
    # SecretStr: the key never appears in a repr, a validation error or a log line.
    openai_api_key: SecretStr = SecretStr("")

    knowledge_base_id: str = ""
    knowledge_base_results: int = Field(default=5, ge=1, le=50)

    aws_region: str = "us-west-2"

    connections_table: str = ""
    sqlite_path: str = "/tmp/selador.sqlite3"  # noqa: S108 - Lambda's only writable path; local default too
    connection_ttl_seconds: int = Field(default=7200 + 600, ge=60)

    websocket_management_endpoint: str = ""
    management_connect_timeout: float = Field(default=2.0, gt=0)
    management_read_timeout: float = Field(default=5.0, gt=0)
    post_max_attempts: int = Field(default=6, ge=1, le=20)

    stream_flush_ms: int = Field(default=100, ge=0, le=5000)
    stream_flush_max_ms: int = Field(default=1500, ge=0, le=10_000)
    stream_max_frame_chars: int = Field(default=8192, ge=64, le=16_000)

    local_model_token_delay_ms: float = Field(default=15.0, ge=0, le=10_000)
    local_model_min_answer_tokens: int = Field(default=0, ge=0, le=2_000_000)
    local_model_tokens_per_delta: int = Field(default=1, ge=1, le=1000)
    agent_max_turns: int = Field(default=8, ge=1, le=50)

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    service_name: str = Field(default="selador", validation_alias="POWERTOOLS_SERVICE_NAME")

    metrics_output: Literal["auto", "stdout", "log", "off"] = "auto"
    metrics_file: str = ""
    tracing: Literal["off", "console", "otlp"] = "off"
    lambda_runtime_api: str = Field(default="", validation_alias="AWS_LAMBDA_RUNTIME_API")

    run_mode: Literal["inline", "async"] = "inline"
    function_name: str = Field(default="", validation_alias="AWS_LAMBDA_FUNCTION_NAME")
    lambda_endpoint: str = ""
    run_claim_ttl_seconds: int = Field(default=900 + 60, ge=60)
    run_log_ttl_seconds: int = Field(default=3600, ge=60, le=30 * 24 * 3600)
    run_poll_ms: int = Field(default=200, ge=20, le=5000)
    session_ttl_seconds: int = Field(default=30 * 24 * 3600, ge=60, le=365 * 24 * 3600)
    session_max_turns: int = Field(default=20, ge=1, le=200)

    auth_mode: Literal["none", "jwt"] = "none"
    auth_jwks_url: str = ""
    auth_issuer: str = ""
    auth_audience: str = ""
    # SecretStr: the secret never appears in a repr, a validation error or a log line.
    auth_hs256_secret: SecretStr = SecretStr("")

    limit_concurrent_per_connection: int = Field(default=3, ge=0, le=1000)
    limit_queries_per_minute: int = Field(default=20, ge=0, le=100_000)
    limit_daily_queries_per_principal: int = Field(default=500, ge=0, le=10_000_000)
    limit_running_answers: int = Field(default=0, ge=0, le=10_000)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("auth_mode", "metrics_output", "tracing", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("ollama_host", "ollama_model", "openai_base_url", "openai_model", mode="before")
    @classmethod
    def _strip(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _auth_configured(self) -> Settings:
        # Fail at start, not at the first handshake: jwt mode with nothing to verify against would
        # refuse everyone, and a JWKS without issuer and audience would accept any token the
        # issuer ever signed for any application.
        secret = self.auth_hs256_secret.get_secret_value()
        if secret and len(secret.encode()) < MIN_HS256_SECRET_BYTES:
            raise ValueError(f"AUTH_HS256_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes")
        if self.auth_mode != "jwt":
            return self
        if not (self.auth_jwks_url or secret):
            raise ValueError("AUTH_MODE=jwt needs AUTH_JWKS_URL or AUTH_HS256_SECRET")
        if self.auth_jwks_url:
            if not self.auth_jwks_url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
                raise ValueError("AUTH_JWKS_URL must be https:// (plain http only on loopback)")
            if not (self.auth_issuer and self.auth_audience):
                raise ValueError("AUTH_JWKS_URL needs AUTH_ISSUER and AUTH_AUDIENCE")
        return self

    @model_validator(mode="after")
    def _default_provider(self) -> Settings:
        if self.model_provider is None:
            provider = "bedrock" if (self.model_arn or self.model_id) else "local"
            object.__setattr__(self, "model_provider", provider)
        if self.model_provider == "bedrock" and not (self.model_arn or self.model_id):
            raise ValueError("MODEL_PROVIDER=bedrock needs MODEL_ARN or MODEL_ID")
        if self.model_provider == "ollama":
            if not self.ollama_model:
                raise ValueError("MODEL_PROVIDER=ollama needs OLLAMA_MODEL (for example qwen2.5:7b-instruct)")
            if not self.ollama_host:
                raise ValueError("MODEL_PROVIDER=ollama needs OLLAMA_HOST (default http://127.0.0.1:11434)")
        if self.model_provider == "openai":
            if not self.openai_base_url:
                raise ValueError(
                    "MODEL_PROVIDER=openai needs OPENAI_BASE_URL (for example http://127.0.0.1:8080/v1)"
                )
            if not self.openai_base_url.startswith(("http://", "https://")):
                raise ValueError("OPENAI_BASE_URL must start with http:// or https://")
            if not self.openai_model:
                raise ValueError("MODEL_PROVIDER=openai needs OPENAI_MODEL")
        return self

    @property
    def provider(self) -> Literal["local", "bedrock", "ollama", "openai"]:
        """The resolved model provider (never ``None`` after validation)."""
        return self.model_provider or "local"

    @property
    def bedrock_model_id(self) -> str:
        """The model identifier handed to Bedrock: the ARN when given, else the id."""
        return self.model_arn or self.model_id

    @property
    def store_backend(self) -> Literal["dynamodb", "sqlite"]:
        """Which connection store the settings select."""
        return "dynamodb" if self.connections_table else "sqlite"


def load_settings() -> Settings:
    """Read and validate the environment.

    Returns:
        The validated settings.

    Raises:
        SettingsError: naming each invalid variable and the rule it breaks.
    """
    try:
        return Settings()
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = str(err["loc"][0]).upper() if err["loc"] else "settings"
            problems.append(f"{name}: {err['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


@functools.cache
def get_settings() -> Settings:
    """The container's settings, read once; tests call ``get_settings.cache_clear()``."""
    return load_settings()
