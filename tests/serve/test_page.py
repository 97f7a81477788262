"""The web page in a real headless browser (Debian's chromium, installed by `make test` when missing)."""
import shutil

import pytest

from im2latex.data import layout
from tests.serve.conftest import start_server

CHROMIUM = shutil.which("chromium")


def test_render_endpoint(model_file):
    from fastapi.testclient import TestClient

    from im2latex.config import ServeConfig, load_section
    from im2latex.serve.app import create_app

    with TestClient(create_app(model_file, load_section("params.yaml", "serve", ServeConfig))) as client:
        ok = client.post("/v1/render", json={"latex": r"\frac { a } { b }"})
        assert ok.status_code == 200 and ok.content.startswith(b"\x89PNG")
        bad = client.post("/v1/render", json={"latex": r"\frac { a"})
        assert bad.status_code == 400 and "could not render" in bad.json()["error"]
        assert "drop" in client.get("/").text.lower()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed and could not be (make test installs it as root)")
def test_page_uploads_an_image_and_shows_its_latex(model_file, tiny_dataset, tmp_path):
    import base64
    import json
    import urllib.request

    from playwright.sync_api import sync_playwright

    image = sorted((tiny_dataset / layout.IMAGES).iterdir())[0]
    server, port = start_server(model_file)
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict", method="POST",
                                         data=json.dumps({"image": base64.b64encode(image.read_bytes()).decode()}).encode(),
                                         headers={"content-type": "application/json"})
        expected = json.load(urllib.request.urlopen(request, timeout=30))["pred"]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run", "--disable-sync"])
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{port}/")
            page.set_input_files("#file", str(image))
            page.wait_for_function("document.getElementById('latex').textContent.length > 0", timeout=30000)
            shown = page.text_content("#latex")
            page.wait_for_function("document.getElementById('rendered').naturalWidth > 0 || "
                                   "document.getElementById('status').textContent.length > 0", timeout=30000)
            page.screenshot(path=str(tmp_path / "page.png"))
            browser.close()
        assert shown == expected
    finally:
        server.terminate()
        server.communicate(timeout=30)
