"""A form protected by CSRF, and a FileResponse (which Django hands to wsgi.file_wrapper)."""

import os
import tempfile

from django import forms
from django.http import FileResponse, JsonResponse
from django.shortcuts import render

DOWNLOAD = bytes(range(256)) * 2048  # 512 KiB


class ContactForm(forms.Form):
    name = forms.CharField(max_length=50)
    email = forms.EmailField()
    message = forms.CharField(widget=forms.Textarea)


def contact(request):
    if request.method == "POST":
        form = ContactForm(request.POST)
        if form.is_valid():
            return JsonResponse({"thanks": form.cleaned_data["name"],
                                 "email": form.cleaned_data["email"]})
        return JsonResponse({"errors": sorted(form.errors)}, status=400)
    return render(request, "contact.html", {"form": ContactForm()})


def download(request):
    path = os.path.join(tempfile.gettempdir(), "ferrocorn-dj-download-%d.bin" % os.getpid())
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(DOWNLOAD)
    return FileResponse(open(path, "rb"), as_attachment=True, filename="report.bin")
