from django.urls import path

from djproject import views

urlpatterns = [
    path("greet/", views.greet),
    path("submit/", views.submit),
]
