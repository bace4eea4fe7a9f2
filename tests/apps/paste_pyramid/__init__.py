"""A small Pyramid application loaded through PasteDeploy (``app.ini`` beside this file).

``main`` is the PasteDeploy app factory (``use = call:paste_pyramid:main``): the ini's
section keys arrive as ``settings`` and the global configuration (``__file__``, ``here``,
``[DEFAULT]`` and whatever ``--paste-global`` adds) as ``global_config``. The views show
both, so a test can see which section was loaded and what reached the factory.
"""

import os

from pyramid.config import Configurator
from pyramid.response import Response


def main(global_config, **settings):
    seen_global = {str(k): str(v) for k, v in global_config.items()}

    def greet(request):
        return Response("%s (pid %d)\n" % (settings["greeting"], os.getpid()),
                        content_type="text/plain")

    def conf(request):
        return {
            "settings": {k: v for k, v in settings.items() if not k.startswith("pyramid.")},
            "global_config": seen_global,
        }

    with Configurator(settings=settings) as config:
        config.add_route("greet", "/")
        config.add_route("conf", "/conf")
        config.add_view(greet, route_name="greet")
        config.add_view(conf, route_name="conf", renderer="json")
        return config.make_wsgi_app()
