"""The one Powertools logger, created once per container.

Powertools reads ``LOG_LEVEL`` / ``POWERTOOLS_LOG_LEVEL`` and ``POWERTOOLS_SERVICE_NAME`` itself;
every module logs through this logger so connection, request and route keys appear on every line.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="selador", use_rfc3339=True)
"""JSON logs with ``connection_id``, ``request_id`` and ``route`` appended per invocation."""
