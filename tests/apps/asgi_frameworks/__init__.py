"""ASGI framework apps (Starlette, FastAPI, async Django, Quart) served by
tests/test_asgi_frameworks*.py with `-k asgi` (and the uvicorn worker names)."""
