"""A small Flask app: routes with converters, a form POST and JSON in and out."""

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/")
def index():
    return "flask index"


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


@app.get("/items/<int:item_id>")
def item(item_id):
    return jsonify({"id": item_id, "double": item_id * 2})
