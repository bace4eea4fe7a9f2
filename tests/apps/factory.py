"""Application factories: `create_app()` and `create_app("x", debug=True)`."""


def create_app(name="default", debug=False):
    def app(environ, start_response):
        body = ("factory name=%s debug=%s\n" % (name, debug)).encode()
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]

    return app


def returns_none():
    return None


not_callable = 42
