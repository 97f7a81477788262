"""image_url: off by default; when on, loopback/private forms, redirects, trickling and oversize are refused."""
import dataclasses
import time

import pytest
from fastapi.testclient import TestClient

from im2latex.config import ServeConfig, load_section
from im2latex.serve.app import create_app
from im2latex.serve.fetch import public_address
from tests.conftest import reply

LOOPBACK_FORMS = ["127.0.0.1", "127.1", "0177.0.0.1", "2130706433", "0x7f.1", "localhost", "[::ffff:127.0.0.1]"]


@pytest.fixture
def canary(loopback):
    return loopback(lambda h: reply(h, 200, b"should never be fetched"))


def app_with(model_file, **serve):
    cfg = dataclasses.replace(load_section("params.yaml", "serve", ServeConfig), **serve)
    return create_app(model_file, cfg)


def hosts_of(forms):
    return [f.strip("[]") for f in forms]


def test_off_by_default(model_file, canary):
    with TestClient(app_with(model_file)) as client:
        response = client.get("/v1/predict", params={"image_url": f"http://127.0.0.1:{canary.port}/x.png"})
    assert response.status_code == 403 and "allow_image_url" in response.json()["error"]
    assert canary.hits == 0


def test_loopback_and_private_forms_are_refused(model_file, canary):
    forms = LOOPBACK_FORMS + ["10.0.0.1", "169.254.169.254", "[::1]", "0.0.0.0"]
    with TestClient(app_with(model_file, allow_image_url=True, url_hosts=hosts_of(forms), url_timeout_s=2.0)) as client:
        for form in forms:
            response = client.get("/v1/predict", params={"image_url": f"http://{form}:{canary.port}/x.png"})
            assert response.status_code == 400 and "non-public address" in response.json()["error"], form
        for url, message in [(f"http://example.org:{canary.port}/x.png", "not in serve.url_hosts"),
                             (f"ftp://127.0.0.1:{canary.port}/x.png", "only http and https"),
                             (f"http://user:pw@127.0.0.1:{canary.port}/x.png", "credentials")]:
            response = client.get("/v1/predict", params={"image_url": url})
            assert response.status_code == 400 and message in response.json()["error"], url
    assert canary.hits == 0


def test_public_address_judges_mapped_and_special_ranges():
    assert public_address("8.8.8.8") and public_address("2001:4860:4860::8888")
    for address in ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
                    "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "2002:7f00:1::1"]:
        assert not public_address(address), address


@pytest.fixture
def widened(model_file):
    """The app with its address check widened to 127.0.0.1, to test what happens after the check."""
    def make(**serve):
        app = app_with(model_file, allow_image_url=True, url_hosts=["127.0.0.1"], **serve)
        app.state.address_allowed = lambda address: address == "127.0.0.1"
        return TestClient(app)
    return make


def test_fetches_an_image_when_allowed(widened, tiny_dataset, loopback):
    from im2latex.data import layout

    png = sorted((tiny_dataset / layout.IMAGES).iterdir())[0].read_bytes()
    server = loopback(lambda h: reply(h, 200, png, {"Content-Type": "image/png"}))
    with widened() as client:
        response = client.get("/v1/predict", params={"image_url": f"http://127.0.0.1:{server.port}/f.png"})
    assert response.status_code == 200 and "pred" in response.json()


def test_redirect_to_loopback_is_not_followed(widened, canary, loopback):
    server = loopback(lambda h: reply(h, 302, b"", {"Location": f"http://127.0.0.1:{canary.port}/x.png"}))
    with widened() as client:
        response = client.get("/v1/predict", params={"image_url": f"http://127.0.0.1:{server.port}/r.png"})
    assert response.status_code == 400 and "redirects are not followed" in response.json()["error"]
    assert canary.hits == 0


def test_trickling_server_cannot_stretch_the_deadline(widened, loopback):
    def trickle(h):
        h.send_response(200)
        h.send_header("Content-Length", "1000")
        h.end_headers()
        for _ in range(20):  # one byte every 0.25 s: each read is quick, the whole is not
            try:
                h.wfile.write(b"x")
                h.wfile.flush()
            except OSError:
                return
            time.sleep(0.25)

    server = loopback(trickle)
    with widened(url_timeout_s=1.0) as client:
        start = time.perf_counter()
        response = client.get("/v1/predict", params={"image_url": f"http://127.0.0.1:{server.port}/slow.png"})
        assert time.perf_counter() - start < 2.5
    assert response.status_code == 400 and "longer than 1.0 s" in response.json()["error"]


def test_oversize_body_is_cut(widened, loopback):
    server = loopback(lambda h: reply(h, 200, b"x" * 5000))
    with widened(max_body_bytes=1000) as client:
        response = client.get("/v1/predict", params={"image_url": f"http://127.0.0.1:{server.port}/big.png"})
    assert response.status_code == 400 and "over 1000 bytes" in response.json()["error"]
