import json
import socket
import subprocess
import sys
import time
import urllib.request


def start_server(model_file) -> tuple[subprocess.Popen, int]:
    """`python -m im2latex serve` on a free loopback port, returned once /readyz says ready."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "im2latex", "serve", "--port", str(port), "--model", str(model_file)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                assert json.load(r)["status"] == "ready"
                return server, port
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError("server did not start: " + server.communicate()[0][-2000:])
            time.sleep(0.3)
