"""The orders service: the app factory, health and version, and the orders API.

Served by uvicorn as `app.main:create_app --factory`; deploy.py sets the environment it reads.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Header, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.middleware.trustedhost import TrustedHostMiddleware

from . import db
from .admin import audit_router
from .admin import router as admin_router
from .limits import BodyLimitMiddleware
from .logs import JsonLogger, RequestLogMiddleware
from .releases import Features, features_for
from .settings import Settings

router = APIRouter()
#: The names this service answers to: loopback's, and the test client's.
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "testserver"]
_ACTOR = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")

Status = Literal["new", "paid", "shipped", "delivered", "cancelled"]
#: An id in a request's path: ids start at 1, and SQLite cannot compare a larger one.
OrderId = Annotated[int, Path(ge=1, le=db.MAX_INTEGER)]


class OrderIn(BaseModel):
    """A new order."""

    model_config = ConfigDict(extra="forbid")

    customer_id: int = Field(ge=1, le=db.MAX_INTEGER)
    item: str = Field(min_length=1, max_length=200)
    quantity: int = Field(ge=1, le=1000)
    total_cents: int = Field(ge=0, le=100_000_000)


class OrderPatch(BaseModel):
    """The fields of an order that may change; those left out stay as they are."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    item: str | None = Field(default=None, min_length=1, max_length=200)
    quantity: int | None = Field(default=None, ge=1, le=1000)
    total_cents: int | None = Field(default=None, ge=0, le=100_000_000)


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _features(request: Request) -> Features:
    return request.app.state.features


@router.get("/health")
def health(request: Request) -> JSONResponse:
    """`{"status": "ok", "version": ...}` when the service can reach its database, with the
    `instance` id deploy.py gave this start (so a deploy knows its own server answered)."""
    settings = _settings(request)
    who = {"instance": settings.instance} if settings.instance else {}
    try:
        with db.connect(settings.database_path) as conn:
            db.ping(conn)
    except sqlite3.Error:
        return JSONResponse(
            {
                "status": "error",
                "version": settings.version,
                "detail": "database unavailable",
                **who,
            },
            status_code=503,
        )
    return JSONResponse({"status": "ok", "version": settings.version, **who})


@router.get("/version")
def version(request: Request) -> dict[str, Any]:
    """The running version and the features it switches on."""
    return {"version": _settings(request).version, "features": _features(request).names()}


@router.get("/api/orders")
def list_orders(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=db.MAX_INTEGER)] = 0,
    status: Status | None = None,
) -> dict[str, Any]:
    """Orders, oldest first, `limit` at a time."""
    with db.connect(_settings(request).database_path) as conn:
        orders, total = db.list_orders(conn, limit=limit, offset=offset, status=status)
    return {"orders": orders, "total": total, "limit": limit, "offset": offset}


@router.post("/api/orders", status_code=201)
def create_order(request: Request, response: Response, order: OrderIn) -> dict[str, Any]:
    """Create an order for a known customer; status starts as `new`."""
    with db.connect(_settings(request).database_path) as conn:
        if not db.customer_exists(conn, order.customer_id):
            raise HTTPException(status_code=422, detail=f"customer {order.customer_id} not found")
        created = db.create_order(conn, **order.model_dump())
    response.headers["Location"] = f"/api/orders/{created['id']}"
    return created


@router.get("/api/orders/{order_id}")
def get_order(request: Request, order_id: OrderId) -> dict[str, Any]:
    """One order."""
    with db.connect(_settings(request).database_path) as conn:
        order = db.get_order(conn, order_id)
    if order is None:
        raise HTTPException(status_code=404, detail=f"order {order_id} not found")
    return order


@router.patch("/api/orders/{order_id}")
def update_order(
    request: Request,
    order_id: OrderId,
    patch: OrderPatch,
    x_actor: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """Change an order. From 1.1.0 on, each changed field is recorded with `X-Actor` and time."""
    changes = patch.model_dump(exclude_unset=True, exclude_none=True)
    if not changes:
        raise HTTPException(status_code=422, detail="nothing to change: give at least one field")
    actor = x_actor if x_actor and _ACTOR.match(x_actor) else "anonymous"
    with db.connect(_settings(request).database_path) as conn:
        order = db.update_order(
            conn,
            order_id,
            changes,
            actor=actor,
            request_id=getattr(request.state, "request_id", None),
            audit_trail=_features(request).audit_trail,
        )
    if order is None:
        raise HTTPException(status_code=404, detail=f"order {order_id} not found")
    return order


async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 with where each error is and what was expected, without the input that failed.

    FastAPI's own answer echoes the input, which may be megabytes, or hold what JSON cannot
    carry (a lone surrogate `"\\ud800"`, a number that overflows to infinity): rendering it
    raised, and a request with a bad value got a 500 instead of its 422.
    """
    errors = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for the given settings (default: from the environment)."""
    settings = settings or Settings.from_environ()
    features = features_for(settings.version)
    logger = JsonLogger(
        settings.log_path, level=settings.log_level, version=settings.version, env=settings.env
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            seeded = db.init_db(settings.database_path, audit_trail=features.audit_trail)
        except Exception as exc:
            logger.log(
                "error",
                f"start-up failed: {type(exc).__name__}: {exc}",
                error_type=type(exc).__name__,
            )
            raise
        logger.log(
            "info",
            f"started demo-service {settings.version} on {settings.env}",
            features=features.names(),
            seeded_orders=seeded,
            pid=os.getpid(),
        )
        yield
        logger.log("info", f"stopping demo-service {settings.version}", pid=os.getpid())

    app = FastAPI(title="demo-service: orders", version=settings.version, lifespan=lifespan)
    app.state.settings = settings
    app.state.features = features
    app.state.logger = logger
    app.add_exception_handler(RequestValidationError, invalid_request)
    # The last one added runs first: every request, a refused body too, gets its log line.
    app.add_middleware(BodyLimitMiddleware)
    # The service listens on loopback only; a name of anyone else's in the Host header is a
    # web page's request that DNS rebinding brought here (the admin area has no login).
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)
    app.add_middleware(RequestLogMiddleware, logger=logger)
    app.include_router(router)
    app.include_router(admin_router)
    if features.audit_trail:
        # Absent before 1.1.0: the audit trail answers 404 there, as a route that does not exist.
        app.include_router(audit_router)
    return app
