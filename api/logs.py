"""Log lines of the API's own loggers (``api.*``) in every Sanic worker process.

Workers are spawned processes: the console script's ``logging.basicConfig`` does not reach them,
so without this ``api.*`` WARNINGs were printed bare by Python's last-resort handler (no time,
level or logger) and INFO lines were lost. ``configure()`` runs in the main process and in each
worker (``create_app``): one stderr handler on the ``api`` logger, plain text by default, one JSON
object per line with ``LOG_FORMAT=json`` (python-json-logger).
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
FORMATS = ("plain", "json")
_MARK = "_pricecat_api_handler"


def formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter(
            JSON_FIELDS,
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    return logging.Formatter(PLAIN_FORMAT)


def configure(fmt: str = "plain", level: int = logging.INFO) -> None:
    """Idempotent: replaces this module's handler on the ``api`` logger."""
    logger = logging.getLogger("api")
    for handler in list(logger.handlers):
        if getattr(handler, _MARK, False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    setattr(handler, _MARK, True)
    handler.setFormatter(formatter(fmt))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False  # the main process' root handler would print it twice
