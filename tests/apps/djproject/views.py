"""One GET view and one POST view (CSRF-exempt: the tests post without a browser session)."""

import json

from django.http import HttpResponseNotAllowed, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def greet(request):
    return JsonResponse({"greeting": "hello from django", "q": request.GET.get("q", "")})


@csrf_exempt
def submit(request):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if request.content_type == "application/json":
        data = json.loads(request.body)
    else:
        data = request.POST.dict()
    return JsonResponse({"method": request.method, "data": data}, status=201)
