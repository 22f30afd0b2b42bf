"""The Celery layer: app, task wrappers around schemabot functions, beat schedule.

celery -A tasks worker | beat | flower
"""

import os
import tempfile

# A worker exporting metrics (SCHEMABOT_METRICS_PORT) needs prometheus_client in multi-process
# mode, which is chosen when it is first imported: set its directory before any import below.
if os.environ.get("SCHEMABOT_METRICS_PORT") and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="schemabot-metrics-")

from tasks import apply_tasks as apply_tasks
from tasks.celery_app import app as app

__all__ = ["app"]
