"""What ``selador serve`` prints when it is ready: every address, setting and override in use.

Values of credential-named variables (``*SECRET*``, ``*TOKEN*``, ``*PASS*``, ``*API_KEY*``,
``*_KEY``…) and the password in any ``scheme://user:password@`` URL are masked wherever the banner
shows the environment, and a bind address other than loopback adds a
warning naming what the network can then reach.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Mapping

from selador.local.environment import Endpoints
from selador.local.gateway import ROUTE_SELECTION_EXPRESSION, STATS_PATH, GatewayOptions
from selador.local.guard import LOOPBACK_HOSTS, host_name
from selador.local.playground import banner_line
from selador.local.processes import default_workers
from selador.local.template import FunctionConfig
from selador.settings import load_settings

_CREDENTIAL_NAME = re.compile(
    r"SECRET|TOKEN|PASS|API_?KEY|PRIVATE_?KEY|CREDENTIAL|ACCESS_KEY|SESSION|COOKIE|_KEY$|_PAT$|DSN",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(r"(?<=://)([^/@:\s]*):[^/@\s]*@")
MASK = "****"


def is_credential_name(name: str) -> bool:
    """Whether a variable's name says its value is a credential."""
    return bool(_CREDENTIAL_NAME.search(name))


def shown(name: str, value: str) -> str:
    """``NAME=value`` as the banner prints it: credentials masked, empty values as ``''``."""
    if not value:
        return f"{name}=''"
    if is_credential_name(name):
        return f"{name}={MASK}"
    # DATABASE_URL=postgres://user:password@host: the name says nothing, the URL does.
    return f"{name}={_URL_PASSWORD.sub(lambda m: f'{m.group(1)}:{MASK}@', value)}"


def exposure_warning(host: str) -> str | None:
    """The warning for a bind address other than loopback, or ``None`` on loopback.

    Args:
        host: The ``--host`` address.

    Returns:
        What becomes reachable from the network, said plainly.
    """
    name = host_name(host)
    if name in LOOPBACK_HOSTS or name.startswith("127."):
        return None
    where = "every network this machine is on" if name in ("0.0.0.0", "::") else f"the network at {host}"  # noqa: S104
    return (
        f"WARNING: --host {host} makes this gateway reachable from {where}: anyone who can reach "
        "this port can run the handler (with this shell's AWS credentials and the --env values), "
        "post to or close any connection (@connections), invoke the function (Lambda API) and read "
        f"{STATS_PATH}. It has no authentication of its own; use --host 127.0.0.1 unless you mean it."
    )


def banner(
    endpoints: Endpoints,
    *,
    template_path: str,
    function: FunctionConfig,
    handler: str,
    function_name: str,
    options: GatewayOptions,
    concurrency: int,
    runtime: str,
    max_frame_bytes: int,
    applied: Mapping[str, str],
    cli_env: Mapping[str, str],
    unresolved: list[str],
) -> str:
    """The ready banner (see the module docstring).

    Args:
        endpoints: Where the gateway answers.
        template_path: The template read.
        function: The function's configuration from it.
        handler: ``module.function`` run.
        function_name: The name the Lambda API answers to.
        options: The gateway's options.
        concurrency: Invocations at once per pool.
        runtime: How the handler runs (:func:`runtime_summary`).
        max_frame_bytes: The frame limit (0: off).
        applied: The local overrides applied.
        cli_env: ``--env-file`` and ``--env`` values.
        unresolved: Template variables that need a deployment to resolve.

    Returns:
        The banner's lines.
    """
    settings = load_settings()
    if settings.provider == "local":
        model = "offline responder (MODEL_PROVIDER=local)"
    elif settings.provider == "ollama":
        model = f"Ollama {settings.ollama_model} at {settings.ollama_host}"
    elif settings.provider == "openai":
        model = f"OpenAI-compatible {settings.openai_model} at {settings.openai_base_url}"
    else:
        model = f"Bedrock {settings.bedrock_model_id}"
    if settings.provider in ("ollama", "openai"):
        from importlib.util import find_spec

        if find_spec(settings.provider) is None:  # the client library is an optional extra
            model += f' (not installed: pip install -e ".[{settings.provider}]")'
    if settings.knowledge_base_id:
        knowledge = f"Bedrock Knowledge Base {settings.knowledge_base_id}"
    else:
        knowledge = "bundled local knowledge base (KNOWLEDGE_BASE_ID empty)"
    timeout = f"{options.integration_timeout:g} s" if options.integration_timeout else "off"
    frame = f"{max_frame_bytes // 1024} KiB" if max_frame_bytes else "off"
    routes = ", ".join(f"{m} {p}" for m, p in options.http_routes) or "none"
    store = (
        f"DynamoDB {settings.connections_table}"
        if settings.connections_table
        else f"SQLite {settings.sqlite_path}"
    )
    overrides = ", ".join(shown(k, v) for k, v in applied.items() if k not in cli_env)
    lines = [
        f"Selador local API Gateway ({template_path}: {function.logical_id}, {function.runtime}, "
        f"timeout {function.timeout} s, {function.memory_size} MB)",
        banner_line(endpoints.base, options.http_routes),
        f"  WebSocket   {endpoints.ws_url}",
        f"  HTTP        {endpoints.http_url}   {routes}",
        f"  Management  {endpoints.management_endpoint}/@connections/{{connectionId}}",
        f"  Lambda      {endpoints.lambda_endpoint}/2015-03-31/functions/{function_name}/invocations",
        f"  Stats       {endpoints.base}{STATS_PATH}",
        f"  Handler     {handler}",
        f"  Runtime     {runtime}",
        f"  Model       {model}",
        f"  Knowledge   {knowledge}",
        f"  Store       {store}",
        f"  Routes      {', '.join(options.websocket_route_keys)} (selection {ROUTE_SELECTION_EXPRESSION})",
        f"  Limits      message {options.max_message_bytes // 1024} KiB, frame {frame}, idle "
        f"{options.idle_timeout:g} s, connection {options.max_connection_duration:g} s, integration "
        f"timeout {timeout}, concurrency {concurrency}, async retries {options.async_retries}",
        f"  Overrides   {overrides}",
    ]
    if cli_env:
        lines.append("  --env       " + ", ".join(shown(k, v) for k, v in cli_env.items()))
    unset = [name for name in unresolved if name not in applied and name not in cli_env]
    if unset:
        lines.append("  Unset       " + ", ".join(unset) + " (the template's value needs a deployment)")
    if options.inject_429 or options.async_duplicate_rate or options.disconnect_drop_rate:
        lines.append(
            f"  Faults      429 rate {options.inject_429:g}, async duplicates "
            f"{options.async_duplicate_rate:g}, dropped $disconnect {options.disconnect_drop_rate:g}"
        )
    warning = exposure_warning(endpoints.host)
    if warning:
        lines.append(warning)
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)


def runtime_summary(args: argparse.Namespace) -> str:
    """How the handler runs, for the banner."""
    if args.isolation == "thread":
        return f"threads of this process (--isolation thread), {args.concurrency} at once"
    return (
        f"{args.workers or default_workers()} front + {args.background_workers or default_workers()} "
        f"background (Event, lower priority) worker processes, {args.concurrency} at once per pool"
    )


__all__ = ["MASK", "banner", "exposure_warning", "is_credential_name", "runtime_summary", "shown"]
