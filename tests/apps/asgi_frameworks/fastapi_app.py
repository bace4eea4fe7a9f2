"""A FastAPI app: a pydantic request body (and FastAPI's 422), a StreamingResponse,
BackgroundTasks that run after the response, a WebSocket route, dependencies, and
exception handlers."""

from __future__ import annotations

import asyncio
import os
from typing import Optional

from fastapi import BackgroundTasks, Depends, FastAPI, Header, HTTPException, Request, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.websockets import WebSocketDisconnect
from pydantic import BaseModel, Field

from asgi_frameworks._support import wait_for_gate, write_marker

app = FastAPI()


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float
    tags: list[str] = []


class Teapot(Exception):
    def __init__(self, brew: str):
        self.brew = brew


@app.exception_handler(Teapot)
async def teapot_handler(request: Request, exc: Teapot):
    return JSONResponse(status_code=418, content={"error": "teapot", "brew": exc.brew})


def pagination(offset: int = 0, limit: int = 10):
    return {"offset": offset, "limit": limit}


def require_token(x_token: Optional[str] = Header(default=None)):
    if x_token != "let-me-in":
        raise HTTPException(status_code=401, detail="bad token")
    return x_token


@app.get("/")
async def index():
    return {"framework": "fastapi"}


@app.post("/items")
async def create_item(item: Item):
    return {"name": item.name, "price": item.price, "tags": item.tags,
            "total": round(item.price * 1.5, 2)}


@app.get("/page")
async def page(paging: dict = Depends(pagination), token: str = Depends(require_token)):
    return {"paging": paging, "token": token}


@app.get("/teapot/{brew}")
async def teapot(brew: str):
    raise Teapot(brew)


@app.get("/boom")
async def boom():
    raise RuntimeError("unhandled on purpose")


@app.get("/stream")
async def stream(n: int = 4):
    async def lines():
        for i in range(n):
            yield "line %d\n" % i
            await asyncio.sleep(0.01)

    return StreamingResponse(lines(), media_type="text/plain")


async def finish_job(job: str):
    # Runs after the response went out; held until the test opens the gate, so the
    # response cannot have waited for it.
    opened = await wait_for_gate("job-%s.gate" % job)
    write_marker("job-%s.done" % job, "done %s gate=%s pid=%d" % (job, opened, os.getpid()))


def sync_job(job: str):
    write_marker("job-%s.sync" % job, "sync %s" % job)


@app.post("/jobs/{job}")
async def start_job(job: str, background: BackgroundTasks):
    background.add_task(sync_job, job)
    background.add_task(finish_job, job)
    return {"accepted": job}


@app.websocket("/ws/{room}")
async def ws_room(websocket: WebSocket, room: str, paging: dict = Depends(pagination)):
    await websocket.accept()
    await websocket.send_json({"room": room, "limit": paging["limit"]})
    try:
        while True:
            data = await websocket.receive_json()
            await websocket.send_json({"room": room, "echo": data})
    except WebSocketDisconnect as exc:
        write_marker("ws-%s.closed" % room, str(exc.code))
