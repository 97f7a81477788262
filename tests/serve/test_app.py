"""The API on a real exported model, TorchScript and ONNX alike, through FastAPI's test client (in process, no network)."""
import base64
import json
import urllib.request
import dataclasses
import io
import struct
import threading
import time
import zlib

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from im2latex.config import ServeConfig, load_section
from im2latex.data import layout
from im2latex.data.preprocessing import load_image
from im2latex.serve.app import create_app

CFG = dataclasses.replace(load_section("params.yaml", "serve", ServeConfig), max_body_bytes=1 << 20, max_pixels=4_000_000)


@pytest.fixture(scope="module", params=["torchscript", "onnx"])
def client(request, model_file, onnx_model):
    """The app on the TorchScript file or on the ONNX export of the same network: their answers are the same."""
    with TestClient(create_app(model_file if request.param == "torchscript" else onnx_model, CFG, request.param)) as client:
        yield client


@pytest.fixture(scope="module")
def formula_png(tiny_dataset) -> bytes:
    return sorted((tiny_dataset / layout.IMAGES).iterdir())[0].read_bytes()


def png(array: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height pixels, with a tiny (truncated) body."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 1000)) + chunk(b"IEND", b""))


def test_health_ready_and_version(client, model_file):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and len(ready["model"]) == 16 and ready["runtime"] in ("torchscript", "onnx")


def test_multipart_and_base64_give_the_models_answer(client, model_file, formula_png, tiny_dataset):
    expected = torch.jit.load(str(model_file))([torch.from_numpy(load_image(formula_png))])[0]
    answer = client.post("/v1/predict", files={"file": ("f.png", formula_png, "image/png")}).json()
    assert answer["pred"] == expected and answer["tokens"] == expected.split() and answer["time_ms"] >= 0
    assert 0.0 < answer["score"] <= 1.0
    assert answer["model"] == client.get("/readyz").json()["model"]
    answer = client.post("/v1/predict", json={"image": base64.b64encode(formula_png).decode()}).json()
    assert answer["pred"] == expected


def test_batch_of_images(client, formula_png):
    files = [("file", ("a.png", formula_png, "image/png")), ("file", ("b.png", formula_png, "image/png"))]
    answer = client.post("/v1/predict", files=files).json()
    assert len(answer["preds"]) == 2 and answer["preds"][0] == answer["preds"][1]


def test_transparent_png_is_read_on_white(client):
    rgba = np.zeros((40, 80, 4), np.uint8)
    rgba[10:30, 10:70, 3] = 255  # black ink on a transparent background
    answer = client.post("/v1/predict", files={"file": ("t.png", png(rgba, "RGBA"), "image/png")})
    assert answer.status_code == 200


@pytest.mark.parametrize("send, status, message", [
    (dict(files={"file": ("x.png", b"random bytes" * 10, "image/png")}), 400, "not an image"),
    (dict(content=b"{not json", headers={"content-type": "application/json"}), 400, "valid base64"),
    (dict(json={"image": "***not base64***"}), 400, "valid base64"),
    (dict(json={"picture": "x"}), 400, "JSON must be"),
    (dict(content=b"hello", headers={"content-type": "text/plain"}), 415, "multipart/form-data"),
    (dict(files={"nofile": ("x.png", b"x", "image/png")}), 400, "no image"),
])
def test_bad_input_is_a_clear_json_error(client, send, status, message):
    response = client.post("/v1/predict", **send)
    assert response.status_code == status and message in response.json()["error"]


def test_truncated_png_and_other_formats(client, formula_png):
    response = client.post("/v1/predict", files={"file": ("t.png", formula_png[: len(formula_png) // 2], "image/png")})
    assert response.status_code == 400 and "truncated" in response.json()["error"]
    gif = io.BytesIO()
    Image.new("L", (20, 20), 255).save(gif, format="GIF")
    response = client.post("/v1/predict", files={"file": ("g.gif", gif.getvalue(), "image/gif")})
    assert response.status_code == 415 and "GIF" in response.json()["error"]


def test_decompression_bomb_is_refused_before_decoding(client):
    small = client.post("/v1/predict", files={"file": ("b.png", bomb_png(3000, 2000), "image/png")})
    assert small.status_code == 413 and "3000x2000" in small.json()["error"]  # over serve.max_pixels
    start = time.perf_counter()
    response = client.post("/v1/predict", files={"file": ("b.png", bomb_png(50000, 50000), "image/png")})
    assert response.status_code == 413 and "2500000000 pixels" in response.json()["error"]
    assert time.perf_counter() - start < 1.0


def test_huge_upload_is_refused_fast_and_the_server_stays_up(client):
    start = time.perf_counter()
    response = client.post("/v1/predict", content=b"\0" * (60 << 20), headers={"content-type": "application/octet-stream"})
    assert response.status_code == 413 and "over" in response.json()["error"]
    assert time.perf_counter() - start < 1.0
    assert client.get("/healthz").status_code == 200


def test_image_url_is_off_by_default(client):
    response = client.get("/v1/predict", params={"image_url": "http://127.0.0.1:1/x.png"})
    assert response.status_code == 403 and "allow_image_url" in response.json()["error"]


def test_metrics_count_requests(client):
    client.get("/healthz")
    text = client.get("/metrics").text
    assert 'im2latex_requests_total{route="/healthz",status="200"}' in text
    assert "im2latex_request_seconds_bucket" in text and "im2latex_in_flight" in text


def test_overload_gives_503_with_retry_after(model_file, formula_png):
    cfg = dataclasses.replace(CFG, concurrency=1, queue=0)
    statuses = []
    with TestClient(create_app(model_file, cfg)) as client:
        def call():
            r = client.post("/v1/predict", files={"file": ("f.png", formula_png, "image/png")})
            statuses.append((r.status_code, r.headers.get("retry-after")))
        threads = [threading.Thread(target=call) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    codes = {s for s, _ in statuses}
    assert len(statuses) == 50 and codes <= {200, 503} and 200 in codes
    assert all(retry == "1" for s, retry in statuses if s == 503)


def test_requests_that_arrive_together_share_a_model_call(model_file, formula_png):
    expected = None
    answers = []
    with TestClient(create_app(model_file, dataclasses.replace(CFG, concurrency=1, queue=16))) as client:
        expected = client.post("/v1/predict", files={"file": ("f.png", formula_png, "image/png")}).json()["pred"]

        def call():
            answers.append(client.post("/v1/predict", files={"file": ("f.png", formula_png, "image/png")}).json())
        threads = [threading.Thread(target=call) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        metrics = client.get("/metrics").text
    assert len(answers) == 12 and all(a["pred"] == expected for a in answers)
    assert max(a["batch_images"] for a in answers) > 1
    calls = float(metrics.split("im2latex_batch_images_count ")[1].split()[0])
    assert calls < 13  # 1 warm-up-free single call + fewer than 12 for the 12 concurrent requests


def test_openapi_schema_lists_the_routes(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/predict", "/healthz", "/readyz", "/metrics"} <= set(paths)
    assert {"get", "post"} <= set(paths["/v1/predict"])
    body = paths["/v1/predict"]["post"]["requestBody"]["content"]
    assert "file" in body["multipart/form-data"]["schema"]["properties"]
    assert {"image", "images"} <= set(body["application/json"]["schema"]["properties"])
    assert paths["/v1/predict"]["get"]["parameters"][0]["name"] == "image_url"


def test_serve_command_runs_uvicorn_on_loopback_and_stops_on_sigterm(model_file, formula_png):
    import json
    import signal
    import urllib.request

    from tests.serve.conftest import start_server

    server, port = start_server(model_file)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict", method="POST",
                                         data=json.dumps({"image": base64.b64encode(formula_png).decode()}).encode(),
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            assert "pred" in json.load(r)
    finally:
        server.send_signal(signal.SIGTERM)
        output = server.communicate(timeout=30)[0]
    assert server.returncode in (0, -signal.SIGTERM), output  # uvicorn re-raises the signal once it has shut down
    assert f"Uvicorn running on http://127.0.0.1:{port}" in output and "Finished server process" in output


def test_sigterm_lets_an_in_flight_request_finish(model_file, formula_png):
    import json
    import signal
    import urllib.request

    from tests.serve.conftest import start_server

    server, port = start_server(model_file)
    answers = []
    body = json.dumps({"images": [base64.b64encode(formula_png).decode()] * CFG.max_images}).encode()

    def call():
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict", method="POST", data=body,
                                         headers={"content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as r:
            answers.append((r.status, json.load(r)))

    try:
        client = threading.Thread(target=call)
        client.start()
        deadline = time.monotonic() + 30
        while True:  # until the prediction is in flight (this poll is the other one)
            metrics = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            if "im2latex_in_flight 2.0" in metrics:
                break
            assert time.monotonic() < deadline, "the prediction never showed as in flight"
        server.send_signal(signal.SIGTERM)
        client.join(timeout=60)
        output = server.communicate(timeout=60)[0]
    finally:
        server.kill()
    # the gauge said the prediction was in flight when the signal came; it still got its whole answer
    assert answers and answers[0][0] == 200 and len(answers[0][1]["preds"]) == CFG.max_images, output


def test_an_image_wider_than_the_model_reads_is_a_413_before_batching(client):
    wide = np.full((60, 6000), 255, np.uint8)
    for x in range(10, 5990, 8):  # glyph-sized marks across: past the encoder's 512 x 8 however it is scaled
        wide[25:35, x:x + 4] = 0
    calls = client.get("/metrics").text.split("im2latex_batch_images_count ")[1].split()[0]
    response = client.post("/v1/predict", files={"file": ("w.png", png(wide), "image/png")})
    assert response.status_code == 413 and "at most 4096x4096" in response.json()["error"]
    assert client.get("/metrics").text.split("im2latex_batch_images_count ")[1].split()[0] == calls  # never batched
    tall = np.ascontiguousarray(wide.T)
    assert client.post("/v1/predict", files={"file": ("t.png", png(tall), "image/png")}).status_code == 413
    assert client.get("/healthz").status_code == 200


def test_a_failing_model_call_fails_only_its_own_requests(model_file, formula_png):
    """12 good and 3 poisoned requests at once: a batch that meets a poisoned image raises; every request is
    answered within the bound, the good ones with their LaTeX, and the server is idle afterwards."""
    poison = np.full((40, 77), 255, np.uint8)
    poison[10:30, 10:60] = 0
    bodies = [formula_png] * 12 + [png(poison)] * 3
    answers = []
    with TestClient(create_app(model_file, dataclasses.replace(CFG, concurrency=1, queue=16))) as client:
        batcher = client.app.state.batcher
        read = batcher.read

        def fragile(images):  # each image prepared at every reading size; the poison is a solid block of ink
            if any(int((sizes[0] < 100).sum()) > 0.3 * sizes[0].shape[0] * sizes[0].shape[1] for sizes in images):
                raise RuntimeError("the model cannot take this image")
            return read(images)
        batcher.read = fragile

        def call(body):
            r = client.post("/v1/predict", files={"file": ("f.png", body, "image/png")})
            answers.append((body is formula_png, r.status_code, r.json()))
        threads = [threading.Thread(target=call, args=(b,)) for b in bodies]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.1, 60 - (time.monotonic() - start)))
        assert len(answers) == 15, f"{15 - len(answers)} requests got no answer in 60 s"
        assert all(status == 200 and "pred" in body for good, status, body in answers if good)
        assert all(status == 500 and "model failed" in body["error"] for good, status, body in answers if not good)
        assert batcher.idle()
        cpu = time.process_time()
        time.sleep(1.0)
        assert time.process_time() - cpu < 0.3  # nothing spins once every client has gone
        assert client.post("/v1/predict", files={"file": ("f.png", formula_png, "image/png")}).status_code == 200


def test_metrics_are_labelled_by_route_template_so_404s_stay_one_series(client):
    import random
    rng = random.Random(0)
    for _ in range(1000):
        assert client.get("/nowhere/" + "".join(rng.choices("abcdefghij", k=12))).status_code == 404
    text = client.get("/metrics").text
    series = [line for line in text.splitlines() if line.startswith("im2latex_requests_total{")]
    assert 'im2latex_requests_total{route="<unmatched>",status="404"} 1000.0' in text
    assert len(series) < 20 and not any("/nowhere/" in line for line in series)


def test_healthz_answers_fast_while_four_clients_send_wide_formulas(model_file):
    """Decoding and measuring an upload run off the event loop: a liveness probe is never stuck behind them."""
    import http.client

    from tests.serve.conftest import start_server

    wide = np.full((600, 6000), 255, np.uint8)  # a screenshot at high density: decoding, cropping, measuring and
    for x in range(50, 5900, 90):  # scaling it takes a few hundred milliseconds
        wide[200 + x % 97:300 + x % 97, x:x + 50] = 0
    body, stop, latencies = png(wide), threading.Event(), []
    server, port = start_server(model_file)

    def send() -> None:
        while not stop.is_set():
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            connection.request("POST", "/v1/predict", body=json.dumps({"image": base64.b64encode(body).decode()}),
                               headers={"content-type": "application/json"})
            connection.getresponse().read()
            connection.close()

    try:
        clients = [threading.Thread(target=send, daemon=True) for _ in range(4)]
        for c in clients:
            c.start()
        time.sleep(1.0)  # the clients are busy
        for _ in range(20):
            start = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
                assert r.status == 200
            latencies.append(time.perf_counter() - start)
            time.sleep(0.1)
    finally:
        stop.set()
        server.terminate()
        server.communicate(timeout=30)
    assert sorted(latencies)[-3] < 0.1, latencies  # 18 of 20 probes (a busy 2-core machine may delay one or two)
