"""FastAPI app: POST/GET /v1/predict, /healthz, /readyz, /metrics. Loads only the TorchScript file.
Bad input gets a JSON error with a 4xx status; overload gets 503 with Retry-After."""
import asyncio
import base64
import binascii
import hashlib
import io
import logging
import tempfile
import time
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from PIL import Image, UnidentifiedImageError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool

from im2latex.config import ServeConfig
from im2latex.data.preprocessing import to_gray
from im2latex.data.rendering import RenderStyle, render_formulas
from im2latex.export import load_reader
from im2latex.serve.fetch import FetchError, fetch, public_address

log = logging.getLogger(__name__)
FORMATS = {"PNG", "JPEG"}
PAGE = (Path(__file__).parent / "page.html").read_text(encoding="utf-8")


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def render_png(latex: str) -> bytes | None:
    """PNG of `latex` rendered with LaTeX, or None when LaTeX rejects it."""
    with tempfile.TemporaryDirectory(prefix="im2latex-serve-") as tmp:
        target = Path(tmp, "formula.png")
        ok = render_formulas([latex], [target], seed=0, style=RenderStyle((150, 150), (8, 8), 0.0), chunk=1, workers=1)
        return target.read_bytes() if ok[0] else None


def decode_image(data: bytes, max_pixels: int) -> torch.Tensor:
    """PNG/JPEG bytes -> uint8 grayscale (H, W), transparency on white; size checked before decoding."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ApiError(413, f"image refused before decoding: {e}".split(", could")[0]) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ApiError(400, "not an image (PNG or JPEG expected)") from None
    if image.format not in FORMATS:
        raise ApiError(415, f"{image.format} images are not supported: send PNG or JPEG")
    if image.width * image.height > max_pixels:
        raise ApiError(413, f"image is {image.width}x{image.height} pixels, more than the {max_pixels} allowed")
    try:
        image.load()
        return torch.from_numpy(np.array(to_gray(image)))  # a writable copy
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise ApiError(400, "the image is truncated or corrupt") from None


class Job:
    """Images waiting for the model, and the future their request awaits (compared by identity)."""
    __slots__ = ("images", "future")

    def __init__(self, images: list[torch.Tensor], future: asyncio.Future):
        self.images, self.future = images, future


class BodyLimit:
    """ASGI middleware: 413 for a body over `limit` bytes, from Content-Length before reading, or as it streams."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _too_large(self.limit, send)
        seen = 0

        async def limited_receive():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise ApiError(413, f"request body over {self.limit} bytes")
            return message

        try:
            await self.app(scope, limited_receive, send)
        except ApiError as e:
            if e.status != 413:
                raise
            await _too_large(self.limit, send)


async def _too_large(limit: int, send) -> None:
    response = JSONResponse({"error": f"request body over {limit} bytes"}, status_code=413, headers={"Connection": "close"})
    await response({"type": "http"}, None, send)


def create_app(model_path: str | Path, cfg: ServeConfig) -> FastAPI:
    registry = CollectorRegistry()
    requests = Counter("im2latex_requests", "HTTP requests", ["route", "status"], registry=registry)
    latency = Histogram("im2latex_request_seconds", "request latency", ["route"], registry=registry)
    in_flight = Gauge("im2latex_in_flight", "requests being handled", registry=registry)
    state = {"ready": False}
    slots = asyncio.Semaphore(cfg.concurrency)
    waiting = {"n": 0}
    pending: list[Job] = []
    batch_images = Histogram("im2latex_batch_images", "images per model call", buckets=(1, 2, 4, 8, 16, 32),
                             registry=registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        state["reader"] = load_reader(model_path)
        state["version"] = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()[:16]
        blank = torch.full((32, 64), 255, dtype=torch.uint8)
        blank[10:20, 10:40] = 0
        await run_in_threadpool(state["reader"], [blank])  # warm-up: TorchScript optimises on first calls
        state["ready"] = True
        log.info("model %s (version %s) ready", model_path, state["version"])
        yield

    app = FastAPI(title="im2latex", version="1", lifespan=lifespan,
                  description="Image of a formula -> its LaTeX. Every answer names the model version (a hash of the file).")

    @app.middleware("http")
    async def observe(request: Request, call_next):
        route, start = request.url.path, time.perf_counter()
        in_flight.inc()
        try:
            response = await call_next(request)
        finally:
            in_flight.dec()
        requests.labels(route, str(response.status_code)).inc()
        latency.labels(route).observe(time.perf_counter() - start)
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return JSONResponse({"error": e.message, "model": state.get("version")}, status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError):
        return JSONResponse({"error": "invalid request: " + "; ".join(str(err.get("msg")) for err in e.errors())},
                            status_code=400)

    async def predict(images: list[torch.Tensor]) -> dict:
        """Queue the images; whichever waiting request gets a slot first runs every queued image it can
        (up to max_images) through the model at once, since batches are faster per image."""
        if waiting["n"] >= cfg.concurrency + cfg.queue:
            raise ApiError(503, "busy: too many predictions queued, retry shortly", {"Retry-After": "1"})
        waiting["n"] += 1
        entry = Job(images, asyncio.get_running_loop().create_future())
        future = entry.future
        pending.append(entry)
        try:
            while not future.done():  # a batch full of older jobs may leave this one for the next round
                async with slots:
                    if not future.done():
                        batch, count = [], 0
                        for job in list(pending):  # oldest first, this request's own job among them
                            if batch and count + len(job.images) > cfg.max_images:
                                break
                            pending.remove(job)
                            batch.append(job)
                            count += len(job.images)
                        start = time.perf_counter()
                        texts, scores = await run_in_threadpool(state["reader"].read, [i for job in batch for i in job.images])
                        ms = round(1000 * (time.perf_counter() - start), 1)
                        batch_images.observe(count)
                        for job in batch:
                            n = len(job.images)
                            job.future.set_result((list(zip(texts[:n], scores[:n])), ms, count))
                            texts, scores = texts[n:], scores[n:]
        finally:
            waiting["n"] -= 1
            if entry in pending:
                pending.remove(entry)
        answers, ms, count = future.result()
        results = [{"pred": t, "tokens": t.split(), "score": round(score, 4)} for t, score in answers]
        return {**results[0], "preds": results, "time_ms": ms, "batch_images": count, "model": state["version"]}

    def images_of(payloads: list[bytes]) -> list[torch.Tensor]:
        if not payloads:
            raise ApiError(400, "no image: send multipart field 'file' or JSON {\"image\": base64}")
        if len(payloads) > cfg.max_images:
            raise ApiError(413, f"{len(payloads)} images, more than the {cfg.max_images} allowed in one request")
        return [decode_image(p, cfg.max_pixels) for p in payloads]

    @app.post("/v1/predict", summary="LaTeX of one or more images",
              description="multipart/form-data with one or more `file` fields, or JSON "
                          "`{\"image\": \"<base64>\"}` / `{\"images\": [\"<base64>\", …]}`. Answers `pred` (the "
                          "first image), `preds` (all), `tokens`, `score` (geometric-mean token probability, 0..1), `time_ms`, "
                          "`batch_images` and `model`.",
              openapi_extra={"requestBody": {"required": True, "content": {
                  "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                      "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
                  "application/json": {"schema": {"type": "object", "properties": {
                      "image": {"type": "string", "format": "byte"},
                      "images": {"type": "array", "items": {"type": "string", "format": "byte"}}}}}}}},
              responses={400: {"description": "unreadable input"}, 413: {"description": "body or image too large"},
                         415: {"description": "not PNG/JPEG, or another content type"},
                         503: {"description": "busy; see Retry-After"}})
    async def post_predict(request: Request):
        kind = request.headers.get("content-type", "")
        if kind.startswith("multipart/form-data"):
            form = await request.form()
            payloads = [await f.read() for f in form.getlist("file") if hasattr(f, "read")]
        elif kind.startswith("application/json"):
            try:
                body = await request.json()
                encoded = body["images"] if "images" in body else [body["image"]]
                payloads = [base64.b64decode(e, validate=True) for e in encoded]
            except (ValueError, KeyError, TypeError, binascii.Error):
                raise ApiError(400, "JSON must be {\"image\": \"<base64>\"} or {\"images\": [...]} with valid base64") from None
        else:
            raise ApiError(415, "send multipart/form-data (field 'file') or application/json")
        return await predict(images_of(payloads))

    @app.get("/v1/predict", summary="LaTeX of an image fetched from a URL (off unless enabled)",
             description="Compatible with the reference project. Off by default (403). When enabled, only "
                         "http/https URLs on serve.url_hosts whose every address is public are fetched, without "
                         "redirects, within max_body_bytes and url_timeout_s.")
    async def get_predict(image_url: str):
        if not cfg.allow_image_url:
            raise ApiError(403, "image_url is disabled on this server; enable it with serve.allow_image_url: true "
                                "(and list hosts in serve.url_hosts) in params.yaml, or POST the image instead")
        try:
            data = await run_in_threadpool(fetch, image_url, cfg.url_hosts, cfg.max_body_bytes, cfg.url_timeout_s,
                                           app.state.address_allowed)
        except FetchError as e:
            raise ApiError(400, f"image_url refused: {e}") from None
        return await predict(images_of([data]))

    @app.get("/", summary="the web page: drop or paste an image, see and copy its LaTeX", response_class=HTMLResponse)
    async def page():
        return HTMLResponse(PAGE)

    @app.post("/v1/render", summary="a PNG of LaTeX rendered by the server (the page shows it beside the input)",
              responses={200: {"content": {"image/png": {}}}, 400: {"description": "LaTeX rejected it"}},
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {
                  "type": "object", "required": ["latex"], "properties": {"latex": {"type": "string", "maxLength": 4000}}}}}}})
    async def render(request: Request):
        try:
            latex = (await request.json())["latex"]
            assert isinstance(latex, str) and 0 < len(latex) <= 4000
        except (ValueError, KeyError, TypeError, AssertionError):
            raise ApiError(400, "JSON must be {\"latex\": \"<at most 4000 characters>\"}") from None
        png = await run_in_threadpool(render_png, latex)
        if png is None:
            raise ApiError(400, "LaTeX could not render this formula")
        return Response(png, media_type="image/png")

    @app.get("/healthz", summary="the process is alive")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz", summary="the model is loaded and warmed up")
    async def readyz():
        if not state["ready"]:
            return JSONResponse({"status": "loading"}, status_code=503)
        return {"status": "ready", "model": state["version"]}

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics():
        return PlainTextResponse(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.state.address_allowed = public_address  # tests widen this to reach their own loopback servers
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)
    return app
