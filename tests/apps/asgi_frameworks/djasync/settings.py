"""Settings for the async Django project: no database, no templates, no CSRF middleware
(the POST view is a plain API endpoint)."""

SECRET_KEY = "ferrocorn-tests-only-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]
ROOT_URLCONF = "asgi_frameworks.djasync.urls"
INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
DATABASES = {}
USE_TZ = True
# Django sets $TZ (and calls time.tzset()) from TIME_ZONE, whose default is
# America/Chicago: the worker's own log lines would change their offset.
TIME_ZONE = "UTC"
