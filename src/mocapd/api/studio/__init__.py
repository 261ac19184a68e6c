"""The Studio: the web app for people, served by mocapd at /studio on the same public API.

`routes.py` holds the session exchange (an API key for an HttpOnly cookie) and serves the pages;
`static/` holds the app (plain ES modules, no build step) and `static/vendor/` the pinned copies of its
third-party scripts (refreshed and checked by scripts/refresh_studio_vendor.py).
"""
