"""FastAPI app: POST/GET /v1/predict, POST /v1/render, the web page, /healthz, /readyz, /metrics. Loads
only the exported reader (the TorchScript file, or the ONNX graphs: no torch). Bad input gets a JSON error with a 4xx status; overload gets 503 with
Retry-After; a model failure gets a JSON 500 for the requests it concerns only."""
import base64
import binascii
import hashlib
import logging
import tempfile
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from im2latex.config import ServeConfig
from im2latex.data.rendering import RenderStyle, render_formulas
from im2latex.runtimes import open_reader
from im2latex.serve.batcher import Batcher
from im2latex.serve.errors import ApiError, BodyLimit
from im2latex.serve.fetch import FetchError, fetch, public_address
from im2latex.serve.images import images_of
from im2latex.serve.metrics import Metrics

log = logging.getLogger(__name__)
PAGE = (Path(__file__).parent / "page.html").read_text(encoding="utf-8")


def render_png(latex: str) -> bytes | None:
    """PNG of `latex` rendered with LaTeX, or None when LaTeX rejects it."""
    with tempfile.TemporaryDirectory(prefix="im2latex-serve-") as tmp:
        target = Path(tmp, "formula.png")
        ok = render_formulas([latex], [target], seed=0, style=RenderStyle((150, 150), (8, 8), 0.0), chunk=1, workers=1)
        return target.read_bytes() if ok[0] else None


def model_version(path: Path) -> str:
    """A hash of the model's file, or of the files of its folder (ONNX)."""
    if not path.is_dir():
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    digest = hashlib.sha256()
    for file in sorted(f for f in path.rglob("*") if f.is_file()):
        digest.update(file.name.encode() + file.read_bytes())
    return digest.hexdigest()[:16]


def create_app(model_path: str | Path, cfg: ServeConfig, runtime: str = "torchscript") -> FastAPI:
    metrics = Metrics()
    state = {"ready": False}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        reader = state["reader"] = open_reader(model_path, runtime)
        state["version"] = model_version(Path(model_path))
        app.state.batcher = Batcher(reader.read_prepared, cfg.concurrency, cfg.queue, cfg.max_images, metrics.batch_images.observe)
        blank = np.full((32, 64), 255, dtype=np.uint8)
        blank[10:20, 10:40] = 0
        await run_in_threadpool(reader.read, [blank])  # warm-up: TorchScript optimises on first calls
        state["ready"] = True
        log.info("model %s (version %s) ready", model_path, state["version"])
        yield

    app = FastAPI(title="im2latex", version="1", lifespan=lifespan,
                  description="Image of a formula -> its LaTeX. Every answer names the model version (a hash of the file).")
    metrics.install(app)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, e: ApiError):
        return JSONResponse({"error": e.message, "model": state.get("version")}, status_code=e.status, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, e: RequestValidationError):
        return JSONResponse({"error": "invalid request: " + "; ".join(str(err.get("msg")) for err in e.errors())},
                            status_code=400)

    async def predict(payloads: list[bytes]) -> dict:
        # decoding and preparing (the glyph measure) take tens of milliseconds a wide image: off the event loop, once
        images = await run_in_threadpool(images_of, payloads, cfg.max_images, cfg.max_pixels, state["reader"])
        answers, ms, count = await app.state.batcher.submit(images)
        results = [{"pred": t, "tokens": t.split(), "score": round(score, 4)} for t, score in answers]
        return {**results[0], "preds": results, "time_ms": ms, "batch_images": count, "model": state["version"]}

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
              responses={400: {"description": "unreadable input"},
                         413: {"description": "body or image too large, or a formula wider/taller than the model reads"},
                         415: {"description": "not PNG/JPEG, or another content type"},
                         500: {"description": "the model failed on this image (other requests are unaffected)"},
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
        return await predict(payloads)

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
        return await predict([data])

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
        except (ValueError, KeyError, TypeError):
            latex = None
        if not isinstance(latex, str) or not 0 < len(latex) <= 4000:  # a check, not an assert: `python -O` drops those
            raise ApiError(400, "JSON must be {\"latex\": \"<at most 4000 characters>\"}")
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
        return {"status": "ready", "model": state["version"], "runtime": runtime}

    app.state.address_allowed = public_address  # tests widen this to reach their own loopback servers
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)
    return app
