"""Load benchmark of the API on 127.0.0.1: requests/s and p50/p95 latency for single-image and batched
requests, sequential and concurrent, on each runtime side by side (the TorchScript file, the ONNX graphs). Starts
`python -m im2latex serve --runtime R` itself, one runtime after the other; every loop is bounded.

    python bench/bench_serve.py [--runtimes torchscript onnx] [--requests 40] [--clients 4] [--batch 4]
                                [--out bench/serve_results.json]

Needs models/model.pt, models/onnx and data/raw (run `make repro` first)."""
import base64
import json
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import common


def post(url: str, images: list[bytes]) -> tuple[int, float]:
    body = json.dumps({"images": [base64.b64encode(i).decode() for i in images]}).encode()
    request = urllib.request.Request(url, data=body, headers={"content-type": "application/json"}, method="POST")
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as e:
        status = e.code
    return status, time.perf_counter() - start


def health_latencies(url: str, stop: threading.Event, out: list[float]) -> None:
    """Time GET /healthz every 50 ms until `stop` is set (bounded by the run it watches)."""
    while not stop.is_set():
        start = time.perf_counter()
        urllib.request.urlopen(url, timeout=10).read()
        out.append(time.perf_counter() - start)
        stop.wait(0.05)


def run(url: str, images: list[bytes], requests: int, clients: int, batch: int) -> dict:
    jobs = [[images[(i * batch + k) % len(images)] for k in range(batch)] for i in range(requests)]
    stop, health = threading.Event(), []
    watcher = threading.Thread(target=health_latencies, args=(url.replace("/v1/predict", "/healthz"), stop, health))
    watcher.start()
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda job: post(url, job), jobs))
    wall = time.perf_counter() - start
    stop.set()
    watcher.join()
    latencies = sorted(t for status, t in results if status == 200)
    return {"requests": requests, "clients": clients, "images_per_request": batch,
            "ok": len(latencies), "status_503": sum(s == 503 for s, _ in results),
            "requests_per_s": round(requests / wall, 2), "images_per_s": round(requests * batch / wall, 2),
            "p50_ms": round(1000 * statistics.median(latencies), 1) if latencies else None,
            "p95_ms": round(1000 * latencies[int(0.95 * (len(latencies) - 1))], 1) if latencies else None,
            "healthz_during_load_max_ms": round(1000 * max(health), 1) if health else None}


def serve_and_run(runtime: str, model: Path, images: list[bytes], args) -> dict:
    """Start the server on `runtime`, run the three loads against it, stop it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "im2latex", "serve", "--port", str(port), "--model", str(model),
                               "--runtime", runtime], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    sys.exit(f"the server did not start on {runtime}")
                time.sleep(0.3)
        url = f"http://127.0.0.1:{port}/v1/predict"
        return {"single, 1 client": run(url, images, args.requests, 1, 1),
                f"single, {args.clients} clients": run(url, images, args.requests, args.clients, 1),
                f"batch of {args.batch}, 1 client": run(url, images, args.requests // args.batch or 1, 1, args.batch)}
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = common.make_parser(__doc__, "bench/serve_results.json", "model")
    parser.add_argument("--images", type=Path, default=Path("data/raw/formula_images"))
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--onnx", type=Path, default=Path("models/onnx"), help="(default: %(default)s)")
    parser.add_argument("--runtimes", nargs="+", choices=["torchscript", "onnx"], default=["torchscript", "onnx"])
    args = parser.parse_args()
    common.require(args.model, args.onnx, args.images)
    images = [p.read_bytes() for p in sorted(args.images.glob("*.png"))[-50:]]  # the test split's images
    results = {}
    for runtime in args.runtimes:
        results[runtime] = serve_and_run(runtime, args.model if runtime == "torchscript" else args.onnx, images, args)
    common.write(results, args.out)


if __name__ == "__main__":
    main()
