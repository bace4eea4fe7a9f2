"""A one-file Django project for the gevent worker tests: djproject's GET and POST views,
a view that sleeps (patched by gevent) and a view that raises. Serve it as
`gevent_django:application`."""

import os
import time

import django
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import JsonResponse
from django.urls import path

settings.configure(
    SECRET_KEY="ferrocorn-tests-only-not-a-secret",
    DEBUG=False,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[],
    MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
    DATABASES={},
    USE_TZ=True,
)
django.setup()

from djproject import views  # noqa: E402  (needs the settings above)


def nap(request):
    tag = request.GET["tag"]
    time.sleep(float(request.GET.get("s", "0.3")))
    return JsonResponse({"tag": tag, "after": request.GET["tag"], "pid": os.getpid()})


def boom(request):
    raise RuntimeError("deliberate failure from gevent_django.py")


urlpatterns = [
    path("greet/", views.greet),
    path("submit/", views.submit),
    path("nap/", nap),
    path("boom/", boom),
]

application = get_wsgi_application()
