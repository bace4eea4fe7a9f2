"""A Bottle app: routes with filters, form and multipart POSTs, JSON, a generator response,
a static file (served through wsgi.file_wrapper), and errors."""

import hashlib
import os
import tempfile

import bottle

FILE_DATA = bytes(range(256)) * 1024  # 256 KiB
STATIC_DIR = os.path.join(tempfile.gettempdir(), "ferrocorn-bottle-%d" % os.getpid())

app = bottle.Bottle()


@app.get("/hello/<name>")
def hello(name):
    return "hello %s" % name


@app.get("/items/<item_id:int>")
def item(item_id):
    return {"id": item_id, "q": bottle.request.query.get("q")}


@app.post("/form")
def form():
    upload = bottle.request.files.get("attachment")
    return {
        "name": bottle.request.forms.getunicode("name"),
        "colours": bottle.request.forms.getall("colour"),
        "file": None if upload is None else {
            "filename": upload.raw_filename,
            "sha256": hashlib.sha256(upload.file.read()).hexdigest(),
        },
    }


@app.post("/json")
def echo_json():
    return {"received": bottle.request.json}


@app.post("/body")
def body():
    data = bottle.request.body.read()
    return {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


@app.get("/stream")
def stream():
    bottle.response.content_type = "text/plain"
    return (("bottle %d\n" % i).encode() for i in range(int(bottle.request.query.n or 4)))


@app.get("/static/<filename>")
def static(filename):
    os.makedirs(STATIC_DIR, exist_ok=True)
    path = os.path.join(STATIC_DIR, "data.bin")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(FILE_DATA)
    return bottle.static_file(filename, root=STATIC_DIR, mimetype="application/octet-stream")


@app.get("/forbidden")
def forbidden():
    bottle.abort(403, "no entry")


@app.get("/redirect")
def redirect():
    bottle.redirect("/hello/redirected")
