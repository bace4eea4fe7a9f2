"""flask_app's Flask app for the gevent worker tests, with two more views: one that raises,
and one that sleeps (patched by gevent) before echoing its own query, to show each greenlet
sees its own request context."""

import os
import time

from flask import jsonify, request

from flask_app import app


@app.get("/nap")
def nap():
    tag = request.args["tag"]
    time.sleep(float(request.args.get("s", "0.3")))
    # Read again after the sleep: another greenlet's request must not have replaced ours.
    return jsonify({"tag": tag, "after": request.args["tag"], "pid": os.getpid()})


@app.get("/boom")
def boom():
    raise RuntimeError("deliberate failure from gevent_flask.py")
