"""The ASGI entry point, as `django-admin startproject` writes it."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "asgi_frameworks.djasync.settings")

application = get_asgi_application()
