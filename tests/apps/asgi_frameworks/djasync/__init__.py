"""An async Django project served through django.core.asgi (no database)."""
