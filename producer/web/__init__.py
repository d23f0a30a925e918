"""`newsflow serve`: the HTTP API (api.py) and the dashboard (pages.py) in one app (app.py)."""
