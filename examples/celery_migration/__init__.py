"""Moving a Celery app to Odin (docs/migrating-from-celery.md): ``tasks`` is the Celery app as it
was, ``durable`` runs those same tasks durably on Odin, ``rewritten`` is the checkout as an Odin
workflow."""
