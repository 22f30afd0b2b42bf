"""The Celery layer: app, task wrappers around schemabot functions, beat schedule.

celery -A tasks worker | beat | flower
"""

from tasks import apply_tasks as apply_tasks
from tasks.celery_app import app as app

__all__ = ["app"]
