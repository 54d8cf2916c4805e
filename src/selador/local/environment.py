"""Where ``selador serve`` answers, and the environment it gives the handler.

The handler's environment is layered: the template's ``Environment.Variables``, then the local
overrides that point it at this machine (:func:`local_overrides`), then ``--env-file`` files, then
``--env`` pairs. ``--env-file`` exists so that secrets need not sit in the command line (where
``ps`` and shell history show them).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

LOCAL_REGION = "us-west-2"
"""The region a local run reports (ids, ARNs, ``AWS_REGION``)."""
# A quoted value, then optionally a comment: KEY="a # b"  # note
_QUOTED = re.compile(r"""^(['"])(.*?)(?<!\\)\1\s*(?:#.*)?$""")
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class EnvFileError(ValueError):
    """An ``--env-file`` that cannot be read, with the file and line that are wrong."""


@dataclass(frozen=True)
class Endpoints:
    """Where a running gateway answers.

    Attributes:
        host: Bound address.
        port: Bound port.
        stage: WebSocket stage.
    """

    host: str
    port: int
    stage: str

    @property
    def base(self) -> str:
        """``http://host:port`` (IPv6 addresses bracketed)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """The WebSocket URL clients connect to."""
        return "ws" + self.base[4:] + f"/{self.stage}"

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP API routes."""
        return self.base

    @property
    def management_endpoint(self) -> str:
        """``WEBSOCKET_MANAGEMENT_ENDPOINT`` for the handler's boto3 client."""
        return f"{self.base}/{self.stage}"

    @property
    def lambda_endpoint(self) -> str:
        """``LAMBDA_ENDPOINT`` for the handler's boto3 Lambda client."""
        return self.base


def local_overrides(endpoints: Endpoints, *, function_name: str, sqlite_path: str) -> dict[str, str]:
    """The variables that point the handler at this machine instead of AWS.

    Args:
        endpoints: The gateway's addresses.
        function_name: ``AWS_LAMBDA_FUNCTION_NAME``.
        sqlite_path: The connection store file for this gateway run.

    Returns:
        Variable name to value, applied over the template's environment.
    """
    return {
        "MODEL_PROVIDER": "local",
        "KNOWLEDGE_BASE_ID": "",
        "CONNECTIONS_TABLE": "",
        "SQLITE_PATH": sqlite_path,
        "WEBSOCKET_MANAGEMENT_ENDPOINT": endpoints.management_endpoint,
        "LAMBDA_ENDPOINT": endpoints.lambda_endpoint,
        "AWS_LAMBDA_FUNCTION_NAME": function_name,
        "AWS_REGION": LOCAL_REGION,
        "AWS_DEFAULT_REGION": LOCAL_REGION,
    }


def build_environment(
    template_env: Mapping[str, str],
    overrides: Mapping[str, str],
    cli_env: Mapping[str, str],
    *,
    memory_size: int,
    inherited: Mapping[str, str],
) -> dict[str, str]:
    """The handler's environment: template, then local overrides, then ``--env``.

    Lambda's own variables (memory, version, log group) are added, and dummy credentials when the
    shell has none: boto3 signs every request, even to a local endpoint.

    Args:
        template_env: The function's resolved ``Environment.Variables``.
        overrides: :func:`local_overrides`.
        cli_env: ``--env KEY=VALUE`` pairs (win over everything).
        memory_size: The function's memory in MB.
        inherited: The current process environment (for the credentials check).

    Returns:
        Every variable to set.
    """
    env = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_size), "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST"}
    has_credentials = bool(inherited.get("AWS_ACCESS_KEY_ID") or inherited.get("AWS_PROFILE"))
    if not has_credentials:
        env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    env |= dict(template_env)
    env |= dict(overrides)
    env |= dict(cli_env)
    env.setdefault("AWS_LAMBDA_LOG_GROUP_NAME", f"/aws/lambda/{env.get('AWS_LAMBDA_FUNCTION_NAME', '')}")
    return env


def parse_pairs(pairs: Sequence[str], flag: str) -> dict[str, str]:
    """``KEY=VALUE`` arguments as a dict (later ones win), for ``selador serve`` and ``invoke``.

    Raises:
        ValueError: naming ``flag`` and the pair, when one has no ``=`` or an empty name.
    """
    result = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"{flag} expects KEY=VALUE, got {pair!r}")
        result[name] = value
    return result


def key_values(pairs: Sequence[str], flag: str) -> dict[str, str]:
    """:func:`parse_pairs` for ``selador serve``: a malformed pair exits naming the flag and the pair."""
    try:
        return parse_pairs(pairs, flag)
    except ValueError as exc:
        raise SystemExit(f"selador serve: {exc}") from None


def read_env_file(path: str | Path) -> dict[str, str]:
    r"""Read a dotenv-style file: ``KEY=VALUE`` lines, ``#`` comments, blank lines, ``export KEY=…``.

    A value may be quoted with ``'`` or ``"`` and followed by a comment (the quotes are removed;
    inside double quotes ``\n`` and ``\t`` are a newline and a tab and a backslash escapes any
    other character); an unquoted value ends at whitespace followed by ``#``. A leading
    byte-order mark is ignored.

    Args:
        path: The file.

    Returns:
        Variable name to value, later lines winning.

    Raises:
        EnvFileError: when the file cannot be read or a line is not ``KEY=VALUE``.
    """
    try:
        # utf-8-sig: editors on Windows start files with a byte-order mark.
        text = Path(path).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"--env-file {path}: cannot read it ({exc})") from None
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENV_LINE.match(line)
        if match is None:
            raise EnvFileError(f"--env-file {path}, line {number}: expected KEY=VALUE")
        name, value = match.groups()
        quoted = _QUOTED.match(value)
        if quoted:
            quote, value = quoted.group(1), quoted.group(2)
            if quote == '"':
                value = re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), value)
        elif value[:1] in ("'", '"'):
            raise EnvFileError(
                f"--env-file {path}, line {number}: the quote that opens {name}'s value never closes"
            )
        else:
            value = re.split(r"\s#", value, maxsplit=1)[0].rstrip()
        values[name] = value
    return values


__all__ = [
    "LOCAL_REGION",
    "Endpoints",
    "EnvFileError",
    "build_environment",
    "key_values",
    "local_overrides",
    "parse_pairs",
    "read_env_file",
]
