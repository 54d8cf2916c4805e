"""The one Powertools logger, created once per container.

Powertools reads ``LOG_LEVEL`` / ``POWERTOOLS_LOG_LEVEL`` and ``POWERTOOLS_SERVICE_NAME`` itself;
every module logs through this logger so connection, request and route keys appear on every line.
Its formatter redacts credentials (tokens, ``Authorization`` headers, ``?token=``) from every record,
including those of the standard-library loggers under ``selador.*``, which propagate to it.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger

from selador.redaction import RedactingFormatter

logger = Logger(service="selador", logger_formatter=RedactingFormatter(use_rfc3339=True))
"""JSON logs with ``connection_id``, ``request_id`` and ``route`` appended per invocation."""
