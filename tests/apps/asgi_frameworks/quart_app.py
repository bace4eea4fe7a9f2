"""A Quart app: routes, JSON in and out, a websocket echo, and before_serving /
after_serving hooks (Quart runs them from the ASGI lifespan protocol)."""

from __future__ import annotations

import os

from quart import Quart, jsonify, request, websocket

from asgi_frameworks._support import write_marker

app = Quart(__name__)
app.config["BOOT"] = None


@app.before_serving
async def startup():
    app.config["BOOT"] = "before_serving-in-%d" % os.getpid()
    write_marker("quart-startup", app.config["BOOT"])


@app.after_serving
async def shutdown():
    write_marker("quart-shutdown", "after_serving-in-%d" % os.getpid())


@app.route("/")
async def index():
    return "quart index"


@app.route("/hello/<name>")
async def hello(name):
    return "hello %s (%s)" % (name, request.args.get("greeting", "hi"))


@app.route("/boot")
async def boot():
    return jsonify(boot=app.config["BOOT"], pid=os.getpid())


@app.route("/json", methods=["POST"])
async def json_echo():
    data = await request.get_json()
    return jsonify(received=data, keys=sorted(data)), 201


@app.websocket("/ws")
async def ws():
    await websocket.send("ready")
    while True:
        message = await websocket.receive()
        if message == "bye":
            await websocket.close(1000)
            return
        if isinstance(message, bytes):
            await websocket.send(message[::-1])
        else:
            await websocket.send("echo:" + message)
