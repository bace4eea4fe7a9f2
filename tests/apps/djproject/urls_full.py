from django.contrib import admin
from django.urls import path

from djproject import views, views_full

urlpatterns = [
    path("admin/", admin.site.urls),
    path("contact/", views_full.contact),
    path("download/", views_full.download),
    path("greet/", views.greet),
]
