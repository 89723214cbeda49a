"""Prefect flows: `refresh-catalog` (flows.refresh) and its 15-minute schedule (flows.schedule)."""

import os

# Prefect's ephemeral server tries to phone home at start-up; with no internet that only prints a
# confusing ERROR line in the middle of `pricecat refresh`. Set before prefect is imported.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
