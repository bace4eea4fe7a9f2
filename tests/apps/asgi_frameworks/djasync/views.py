"""Async views, an async streaming response and a sync view (which Django's ASGI handler
runs in a thread through sync_to_async)."""

import asyncio
import hashlib
import threading

from django.http import HttpResponse, JsonResponse, StreamingHttpResponse


async def index(request):
    return HttpResponse("django asgi index", content_type="text/plain")


async def async_view(request, n):
    await asyncio.sleep(0)
    loop = asyncio.get_running_loop()
    return JsonResponse({
        "n": n,
        "double": n * 2,
        "q": request.GET.get("q"),
        "running_loop": loop is not None,
        "scheme": request.scheme,
        "path": request.path,
        "method": request.method,
    })


async def stream(request):
    count = int(request.GET.get("n", "5"))

    async def parts():
        for i in range(count):
            await asyncio.sleep(0.01)
            yield "part %d\n" % i

    return StreamingHttpResponse(parts(), content_type="text/plain")


def sync_view(request):
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    return JsonResponse({
        "in_event_loop": in_loop,
        "main_thread": threading.current_thread() is threading.main_thread(),
        "agent": request.headers.get("User-Agent"),
    })


async def echo(request):
    if request.method != "POST":
        return HttpResponse(status=405)
    body = request.body
    return JsonResponse({
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_type": request.content_type,
        "form": dict(request.POST) if request.content_type == "application/x-www-form-urlencoded" else None,
    })
