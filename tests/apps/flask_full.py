"""A Flask app for the framework tests: routing, form and multipart POSTs, a streamed upload
read in 64 KiB pieces, and a streamed response."""

import hashlib
import os
import time

from flask import Flask, Response, abort, jsonify, request, stream_with_context

app = Flask(__name__)

PIECE = 64 * 1024


@app.get("/")
def index():
    return "flask full index"


@app.get("/users/<int:user_id>/posts/<slug>")
def post(user_id, slug):
    return jsonify({"user": user_id, "slug": slug, "page": request.args.get("page", type=int)})


@app.route("/things", methods=["GET", "POST"])
def things():
    if request.method == "POST":
        return jsonify({"created": request.get_json()["name"]}), 201
    return jsonify({"things": []})


@app.get("/teapot")
def teapot():
    abort(418)


@app.post("/form")
def form():
    upload = request.files.get("attachment")
    return jsonify({
        "fields": request.form.to_dict(flat=False),
        "file": None if upload is None else {
            "filename": upload.filename,
            "content_type": upload.content_type,
            "sha256": hashlib.sha256(upload.read()).hexdigest(),
        },
    })


@app.post("/upload")
def upload():
    """Counts the body without keeping it: the server must not buffer it either."""
    digest = hashlib.sha256()
    total = pieces = 0
    stream = request.stream
    while True:
        piece = stream.read(PIECE)
        if not piece:
            break
        digest.update(piece)
        total += len(piece)
        pieces += 1
    return jsonify({"bytes": total, "pieces": pieces, "sha256": digest.hexdigest(),
                    "pid": os.getpid()})


@app.get("/stream")
def stream():
    count = request.args.get("n", 5, type=int)
    delay = request.args.get("delay", 0.0, type=float)

    @stream_with_context
    def generate():
        # stream_with_context keeps the request context alive while the server iterates.
        for i in range(count):
            if i and delay:
                time.sleep(delay)
            yield "line %d of %s\n" % (i, request.args.get("label", "stream"))

    return Response(generate(), mimetype="text/plain")
