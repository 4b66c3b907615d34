"""The same Celery tasks, run durably by Odin. The Celery app is imported as it is; its tasks
become activities of this Odin app, and its canvases run as workflows:

    odin worker -A examples.celery_migration.durable:app

    from odin.sdk.celery import run
    run(tasks.checkout(order), app).get(timeout=60)
"""

from odin.sdk import App
from odin.sdk.celery import register_tasks

from examples.celery_migration.tasks import app as celery_app

app = App("orders")  # server, namespace and task queue from ODIN_ADDRESS, ODIN_NAMESPACE, ODIN_TASK_QUEUE
register_tasks(app, celery_app)
