"""Fixtures: a tiny dataset rendered with real LaTeX, built once per test session; loopback HTTP servers."""
import http.server
import threading
from pathlib import Path

import pytest
import torch

from im2latex.config import PreprocessConfig, SyntheticConfig
from im2latex.data import layout
from im2latex.data.sources import build_synthetic
from im2latex.data.tokenizer import tokenize
from im2latex.data.vocab import build_vocabulary
from im2latex.export import export_onnx, script
from im2latex.model.network import Im2LatexNet

TINY = SyntheticConfig(train=16, validate=4, test=4, max_tokens=40, dpi=(90, 200), pad=(2, 8), noise=0.01, font_sizes=[10, 12],
                       downsample=(1.0, 2.0), bold=0.2, blur=0.2, binarise=0.1, jpeg=0.1, chunk=8,
                       eval_chunk=2, renderers={"latex": 1.0}, tinted=0.0, dark=0.0)
PREPROCESS = PreprocessConfig(threshold=200, pad=4, glyph_height=0.0, max_height=160, max_width=800, max_tokens=150)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """24 synthetic formulas in IM2LATEX-100K layout (read-only: copy it before changing it)."""
    root = tmp_path_factory.mktemp("tiny")
    build_synthetic(root, TINY, seed=1)
    return root


@pytest.fixture(scope="session")
def tiny_net(tiny_dataset) -> tuple[Im2LatexNet, list[str]]:
    """A small untrained network over the tiny dataset's vocabulary, and that vocabulary."""
    formulas = layout.read_formulas(tiny_dataset)
    vocab, _ = build_vocabulary([tokenize(f) for f in formulas], min_freq=1)
    torch.manual_seed(0)
    net = Im2LatexNet(vocab.tokens, d_model=32, heads=2, layers=1, ff=64, dropout=0.0, encoder_channels=8, max_len=12)
    return net.eval(), vocab.tokens


@pytest.fixture(scope="session")
def model_file(tiny_net, tmp_path_factory) -> Path:
    """The TorchScript file of `tiny_net`, read greedily at one size."""
    net, tokens = tiny_net
    path = tmp_path_factory.mktemp("model") / "model.pt"
    script(net, tokens, threshold=200, pad=4, glyph_heights=[10.0], beam_width=1).save(str(path))
    return path


@pytest.fixture(scope="session")
def onnx_model(tiny_net, tmp_path_factory) -> Path:
    """The ONNX export of `tiny_net` (a folder), read as `model_file` is."""
    net, tokens = tiny_net
    folder = tmp_path_factory.mktemp("onnx") / "onnx"
    export_onnx(net, tokens, folder, threshold=200, pad=4, glyph_height=10.0, glyph_heights=[10.0], beam_width=1,
                length_penalty=0.0, agreement=16.0)
    return folder


class LoopbackServer:
    """An HTTP server on 127.0.0.1 whose GET requests go to `handle(request_handler)`; counts its hits."""

    def __init__(self, handle):
        self.hits = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                outer.hits += 1
                handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def reply(handler, status: int, body: bytes = b"", headers: dict | None = None) -> None:
    """Answer a request in a LoopbackServer handler."""
    handler.send_response(status)
    for k, v in (headers or {}).items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture
def loopback():
    """`loopback(handle)` starts a LoopbackServer; every one started is shut down after the test."""
    servers = []

    def start(handle) -> LoopbackServer:
        servers.append(LoopbackServer(handle))
        return servers[-1]
    yield start
    for server in servers:
        server.close()
