"""Prefect flows: `refresh-catalog` (flows.refresh) and its 15-minute schedule (flows.schedule)."""

import os

# Prefect's ephemeral server tries to phone home at start-up; with no internet that only prints a
# confusing ERROR line in the middle of `pricecat refresh`. Set before prefect is imported.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# On a busy 2-core machine the temporary server of a serverless `pricecat refresh` can take longer
# than Prefect's default 20 s to start; give it room rather than fail the refresh.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
