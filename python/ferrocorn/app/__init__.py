"""Gunicorn's application classes (``gunicorn.app``) for programs that start the server
themselves: ``base.BaseApplication``, ``base.Application`` and
``wsgiapp.WSGIApplication``."""
