"""Pure helpers shared by every app. Nothing here imports a Django app."""
