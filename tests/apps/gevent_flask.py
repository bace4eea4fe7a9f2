"""A small Flask app for the gevent worker tests: routes, a form and a JSON POST, a view
that raises, and a view that sleeps (patched by gevent) before echoing its own query, to
show each greenlet sees its own request context."""

import os
import time

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/")
def index():
    return "flask on gevent"


@app.get("/hello/<name>")
def hello(name):
    return "hello %s" % name


@app.post("/form")
def form():
    return "name=%s;colour=%s" % (request.form.get("name"), request.form.get("colour"))


@app.post("/json")
def echo_json():
    payload = request.get_json()
    return jsonify({"received": payload, "count": len(payload)})


@app.get("/nap")
def nap():
    tag = request.args["tag"]
    time.sleep(float(request.args.get("s", "0.3")))
    # Read again after the sleep: another greenlet's request must not have replaced ours.
    return jsonify({"tag": tag, "after": request.args["tag"], "pid": os.getpid()})


@app.get("/boom")
def boom():
    raise RuntimeError("deliberate failure from gevent_flask.py")
