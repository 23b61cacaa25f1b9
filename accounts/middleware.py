"""Login for every page; the API answers 401/403 itself instead of redirecting."""

from django.contrib.auth.middleware import LoginRequiredMiddleware


class LoginRequired(LoginRequiredMiddleware):
    open_prefixes = ("/api/", "/static/")

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path.startswith(self.open_prefixes):
            return None  # DRF authenticates API calls (session or bearer token)
        return super().process_view(request, view_func, view_args, view_kwargs)
