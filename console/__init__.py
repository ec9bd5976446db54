"""The web console: administrators issue, rotate and revoke API tokens in a browser.

``python -m console`` serves server-rendered pages (Jinja2, progressively enhanced with
htmx, every action a plain form post too). It is the registered publisher ``console``,
delegating: each command it sends carries the signed-in administrator as its ``actor``,
and it reads through the read API. See :mod:`console.app` for how it is wired.
"""
