"""Fuzzing the API with hypothesis: whatever arrives, the answer is a JSON 4xx or a 200, never a 5xx."""
import base64
import dataclasses

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from im2latex.config import ServeConfig, load_section
from im2latex.serve.app import create_app

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
bodies = st.one_of(
    st.binary(max_size=2000),
    st.binary(max_size=500).map(lambda b: PNG_HEADER + b),  # damaged PNGs
    st.binary(max_size=500).map(lambda b: b"\xff\xd8\xff" + b),  # damaged JPEGs
)
json_bodies = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=50),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["image", "images", "x"]), inner, max_size=3),
                           max_leaves=8)


@pytest.fixture(scope="module")
def client(model_file):
    cfg = dataclasses.replace(load_section("params.yaml", "serve", ServeConfig), max_body_bytes=1 << 20)
    with TestClient(create_app(model_file, cfg)) as client:
        yield client


def check(response):
    assert response.status_code < 500, response.text
    if response.status_code != 200:
        assert "error" in response.json()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, kind=st.sampled_from(["multipart", "base64", "raw"]))
def test_any_bytes(client, body, kind):
    if kind == "multipart":
        check(client.post("/v1/predict", files={"file": ("f", body, "application/octet-stream")}))
    elif kind == "base64":
        check(client.post("/v1/predict", json={"image": base64.b64encode(body).decode()}))
    else:
        check(client.post("/v1/predict", content=body, headers={"content-type": "application/json"}))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_bodies, latex=st.text(max_size=80))
def test_any_json(client, body, latex):
    check(client.post("/v1/predict", json=body))
    check(client.post("/v1/render", json={"latex": latex}))
    check(client.get("/v1/predict", params={"image_url": latex}))
