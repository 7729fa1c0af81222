from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from promptlooper.api import api
from sweeps.web.login import AdminLoginForm, LoginForm

admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("login/", auth_views.LoginView.as_view(authentication_form=LoginForm), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("sweeps.web.urls")),
]
