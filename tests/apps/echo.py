"""Echoes the request body and reports how it was framed."""


def app(environ, start_response):
    body = environ["wsgi.input"].read()
    headers = [
        ("Content-Type", "application/octet-stream"),
        ("Content-Length", str(len(body))),
        ("X-Method", environ["REQUEST_METHOD"]),
        ("X-Content-Length", environ.get("CONTENT_LENGTH", "-")),
        ("X-Transfer-Encoding", environ.get("HTTP_TRANSFER_ENCODING", "-")),
    ]
    start_response("200 OK", headers)
    return [body]
