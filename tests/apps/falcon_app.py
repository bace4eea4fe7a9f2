"""A Falcon WSGI app: typed routes, JSON media in and out, a bounded-stream upload, a streamed
response, and a file served through `resp.stream` (which Falcon hands to wsgi.file_wrapper)."""

import hashlib
import os
import tempfile

import falcon

FILE_DATA = bytes(range(256)) * 1024  # 256 KiB


class ThingResource:
    def on_get(self, req, resp, thing_id):
        resp.media = {"id": thing_id, "kind": type(thing_id).__name__,
                      "q": req.get_param("q"), "tags": req.get_param_as_list("tag")}

    def on_delete(self, req, resp, thing_id):
        resp.status = falcon.HTTP_204


class ThingsResource:
    def on_post(self, req, resp):
        payload = req.get_media()
        resp.status = falcon.HTTP_201
        resp.location = "/things/%d" % payload["id"]
        resp.media = {"created": payload}


class UploadResource:
    def on_put(self, req, resp):
        digest = hashlib.sha256()
        total = 0
        # bounded_stream stops at Content-Length (so reads 0 bytes of a chunked body);
        # wsgi.input itself ends where the body ends (wsgi.input_terminated).
        stream = req.bounded_stream if req.content_length is not None else req.stream
        while True:
            piece = stream.read(65536)
            if not piece:
                break
            digest.update(piece)
            total += len(piece)
        resp.media = {"bytes": total, "sha256": digest.hexdigest(),
                      "content_length": req.content_length}


class StreamResource:
    def on_get(self, req, resp):
        count = req.get_param_as_int("n", default=4)
        resp.content_type = falcon.MEDIA_TEXT
        resp.stream = (("falcon %d\n" % i).encode() for i in range(count))


class FileResource:
    def on_get(self, req, resp):
        path = os.path.join(tempfile.gettempdir(), "ferrocorn-falcon-%d.bin" % os.getpid())
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(FILE_DATA)
        resp.content_type = "application/octet-stream"
        resp.set_stream(open(path, "rb"), len(FILE_DATA))

    on_head = on_get


class TeapotResource:
    def on_get(self, req, resp):
        raise falcon.HTTPError(falcon.HTTP_418, title="I'm a teapot")


app = falcon.App()
app.add_route("/things/{thing_id:int}", ThingResource())
app.add_route("/things", ThingsResource())
app.add_route("/upload", UploadResource())
app.add_route("/stream", StreamResource())
app.add_route("/file", FileResource())
app.add_route("/teapot", TeapotResource())
