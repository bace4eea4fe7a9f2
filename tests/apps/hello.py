"""Plain WSGI Hello World; also exposes `application` for the `module`-only URI form."""


def app(environ, start_response):
    body = b"Hello, World!\n"
    start_response(
        "200 OK",
        [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
    )
    return [body]


application = app
