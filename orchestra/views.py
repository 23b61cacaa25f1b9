from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def health(request):
    """Liveness for load balancers: the database answers."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return JsonResponse({"status": "UP"})
    except Exception as exc:  # noqa: BLE001
        return JsonResponse({"status": "DOWN", "error": str(exc)}, status=503)
