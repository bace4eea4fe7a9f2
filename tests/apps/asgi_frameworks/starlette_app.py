"""A Starlette app: path parameters, JSON, a gated StreamingResponse, a FileResponse, a
POST body, state from a lifespan context manager, and a WebSocket echo."""

from __future__ import annotations

import contextlib
import hashlib
import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from asgi_frameworks._support import data_dir, wait_for_gate, write_marker


@contextlib.asynccontextmanager
async def lifespan(app):
    app.state.boot_token = "booted-in-%d" % os.getpid()
    # A yielded mapping becomes the scope's "state": Starlette refuses it unless the
    # server put "state" in the lifespan scope.
    yield {"from_lifespan_state": "lifespan-state-ok"}
    write_marker("starlette-shutdown", "shutdown-in-%d" % os.getpid())


async def index(request: Request):
    return PlainTextResponse("starlette index")


async def item(request: Request):
    return JSONResponse({
        "user": request.path_params["user"],
        "item_id": request.path_params["item_id"],
        "q": request.query_params.get("q"),
        "path": request.url.path,
    })


async def state(request: Request):
    return JSONResponse({
        "boot_token": request.app.state.boot_token,
        "scope_state": request.state.from_lifespan_state,
        "pid": os.getpid(),
    })


async def stream(request: Request):
    gate = request.query_params["gate"]

    async def chunks():
        yield b"first chunk;"
        # The rest only once the client has shown it received the first.
        if not await wait_for_gate(gate):
            yield b"gate never opened"
            return
        for i in range(5):
            yield b"chunk %d;" % i

    return StreamingResponse(chunks(), media_type="text/plain")


async def download(request: Request):
    return FileResponse(data_dir() / request.path_params["name"],
                        media_type="application/octet-stream", filename="payload.bin")


async def upload(request: Request):
    body = await request.body()
    return JSONResponse({
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_type": request.headers.get("content-type"),
    })


async def ws_echo(websocket: WebSocket):
    await websocket.accept()
    await websocket.send_text("hello %s" % websocket.path_params["name"])
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                if message["text"] == "close":
                    await websocket.close(code=4001, reason="asked to close")
                    return
                await websocket.send_text("echo:" + message["text"])
            else:
                await websocket.send_bytes(b"echo:" + message["bytes"])
    except WebSocketDisconnect:
        return


app = Starlette(
    routes=[
        Route("/", index),
        Route("/users/{user}/items/{item_id:int}", item),
        Route("/state", state),
        Route("/stream", stream),
        Route("/files/{name}", download),
        Route("/upload", upload, methods=["POST"]),
        WebSocketRoute("/ws/{name}", ws_echo),
    ],
    lifespan=lifespan,
)
