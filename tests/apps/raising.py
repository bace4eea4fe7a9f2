"""`/boom` raises before start_response; every other path answers 200."""


class BoomError(RuntimeError):
    pass


def app(environ, start_response):
    if environ.get("PATH_INFO") == "/boom":
        raise BoomError("deliberate failure from raising.py")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
