"""The container image (Dockerfile): built with `make image` from the test suite's tiny model (ONNX), run, asked,
stopped; it holds no torch and weighs under 1 GB."""
import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import torch

from im2latex.data import layout
from im2latex.data.images import load_image
from im2latex.serve.app import model_version

ROOT = Path(__file__).resolve().parents[2]
# What the Dockerfile copies from its build context (the real context also holds models/onnx)
CONTEXT_FILES = ["Dockerfile", ".dockerignore", "requirements.txt", "requirements-serve.txt", "params.yaml", "im2latex"]


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {(done.stderr or done.stdout).strip()[-2000:]}")
    return done


def engine_problem() -> str | None:
    """Why no Docker engine can be used here (one line), or None when one answers."""
    if shutil.which("docker") is None:
        return "no docker command (`make test` installs docker.io as root on Debian/Ubuntu; elsewhere install Docker)"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        lines = (info.stderr or info.stdout).strip().splitlines() or ["no answer"]
        return f"the Docker engine does not answer ({lines[-1]}); `make test` starts dockerd as root"
    return None


def build_context(folder: Path, model: Path | None) -> Path:
    """A copy of the build context in `folder`, with the ONNX folder `model` (if any) as models/onnx."""
    for name in CONTEXT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, folder / name)
    (folder / "models").mkdir()
    if model is not None:
        shutil.copytree(model, folder / "models" / "onnx")
    return folder


def make_image(tag: str, context: Path, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "image", f"IMAGE={tag}", f"CONTEXT={context}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def image(onnx_model, tmp_path_factory):
    """The image built by `make image` with the tiny model as models/onnx; removed afterwards."""
    if problem := engine_problem():
        pytest.skip(f"image test not run: {problem}")
    context = build_context(tmp_path_factory.mktemp("context"), onnx_model)
    tag = f"im2latex-test-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    build = make_image(tag, context, timeout=45 * 60)
    assert build.returncode == 0, "make image failed:\n" + (build.stdout + build.stderr)[-4000:]
    print(f"built {tag} in {time.monotonic() - started:.0f} s")
    try:
        yield tag
    finally:
        docker("rmi", "-f", tag, check=False)


@pytest.mark.slow
def test_image_refuses_to_build_without_a_model(tmp_path):
    if problem := engine_problem():
        pytest.skip(f"image test not run: {problem}")
    build = make_image("im2latex-test-no-model", build_context(tmp_path, None), timeout=15 * 60)
    assert build.returncode != 0 and "models/onnx is missing: run `make repro` first" in build.stdout + build.stderr


def post(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={"content-type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def multipart(*pngs: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with each PNG as a `file` field, and its content type."""
    boundary = uuid.uuid4().hex
    body = b"".join(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.png\"\r\n"
                    f"Content-Type: image/png\r\n\r\n".encode() + png + b"\r\n" for png in pngs)
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.slow
def test_the_image_holds_no_torch_and_weighs_under_1_gb(image):
    size = int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout)
    print(f"{image}: {size / 1e6:.0f} MB")
    assert size <= 1_000_000_000
    probe = docker("run", "--rm", "--entrypoint", "python3", image, "-c", "import onnxruntime, torch", check=False)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr, probe.stderr


@pytest.mark.slow
def test_container_serves_the_model_and_stops_cleanly(image, onnx_model, model_file, tiny_dataset, tmp_path):
    # A mounted params.yaml replaces the baked-in serve: section (here: one image per request)
    params = tmp_path / "params.yaml"
    params.write_text((ROOT / "params.yaml").read_text().replace("max_images: 16", "max_images: 1"))
    assert "max_images: 1\n" in params.read_text()
    params.chmod(0o644)
    name = f"{image}-run"
    started = time.monotonic()
    docker("run", "-d", "--name", name, "-p", "127.0.0.1::8000", "--health-interval=2s",
           "-v", f"{params}:/app/params.yaml:ro", image)
    try:
        port = docker("port", name, "8000/tcp").stdout.split()[0].rsplit(":", 1)[1]
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
                    ready = json.load(r)
                if ready["status"] == "ready":
                    break
            except (OSError, ValueError):
                pass
            state = docker("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            if state != "running" or time.monotonic() - started > 180:
                raise AssertionError(f"container {state}, not ready:\n" + docker("logs", name).stderr[-3000:])
            time.sleep(0.5)
        print(f"/readyz answered {time.monotonic() - started:.1f} s after docker run")
        assert ready["model"] == model_version(onnx_model) and ready["runtime"] == "onnx"

        png = sorted((tiny_dataset / layout.IMAGES).iterdir())[0].read_bytes()
        expected = torch.jit.load(str(model_file))([torch.from_numpy(load_image(png).copy())])[0]  # the same network
        status, answer = post(base + "/v1/predict", *multipart(png))
        assert status == 200 and answer["pred"] == expected and answer["model"] == ready["model"], answer
        print("answer:", json.dumps(answer))

        status, answer = post(base + "/v1/predict", b"{not json", "application/json")
        assert status == 400 and "base64" in answer["error"], answer
        status, answer = post(base + "/v1/predict", *multipart(png, png))
        assert status == 413 and "more than the 1 allowed" in answer["error"], answer

        with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
            assert json.load(r) == {"status": "ok"}
        deadline = time.monotonic() + 60
        while (health := docker("inspect", "--format", "{{.State.Health.Status}}", name).stdout.strip()) != "healthy":
            assert health == "starting" and time.monotonic() < deadline, f"HEALTHCHECK says {health}"
            time.sleep(1)

        uid = docker("exec", name, "python3", "-c", "import os; print(os.getuid())").stdout.strip()
        assert uid != "0", "the server runs as root"
        lock = set((ROOT / "requirements.txt").read_text().splitlines())
        installed = docker("exec", name, "pip", "freeze").stdout.split()
        unpinned = [p for p in installed if p not in lock]
        assert installed and not unpinned, f"installed, but not as requirements.txt pins them: {unpinned}"

        docker("stop", "--time", "30", name, timeout=60)  # SIGTERM, then SIGKILL after 30 s
        code = docker("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
        logs = docker("logs", name).stderr
        assert code == "0" and "Finished server process" in logs, f"exit code {code}:\n{logs[-2000:]}"
    finally:
        docker("rm", "-f", name, check=False)
