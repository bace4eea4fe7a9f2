from django.urls import path

from asgi_frameworks.djasync import views

urlpatterns = [
    path("", views.index),
    path("async/<int:n>/", views.async_view),
    path("stream/", views.stream),
    path("sync/", views.sync_view),
    path("echo/", views.echo),
]
