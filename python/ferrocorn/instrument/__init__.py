"""Metrics that ride on the logger: ``ferrocorn.instrument.statsd.Statsd`` stands in for
Gunicorn's ``gunicorn.instrument.statsd.Statsd`` when Python logging is in use."""
