# The API in a container: `python -m im2latex serve --runtime onnx` on 0.0.0.0:8000 with models/onnx (exported by
# `make repro`): ONNX Runtime, no torch, so the image weighs 763 MB (docker image inspect) rather than 6.35 GB.
#   docker build -t im2latex .   (or `make image`, which also builds a base where Docker Hub is unreachable)
#   docker run -p 8000:8000 im2latex
# Limits: the serve: section of params.yaml, baked in; override it with -v $PWD/my-params.yaml:/app/params.yaml:ro
ARG BASE=python:3.11-slim

# Fails the build within seconds, not after the installs, when there is no model to serve
FROM ${BASE} AS model
COPY models/ /models/
RUN test -f /models/onnx/reader.json || { echo 'models/onnx is missing: run `make repro` first (it trains and exports the model), then build again' >&2; exit 1; }

FROM ${BASE}
# LaTeX renders the answer beside the image on the web page (/v1/render)
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends texlive-latex-base dvipng >/dev/null \
    && apt-get clean && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin im2latex
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Only what serving on ONNX Runtime imports, each package and dependency pinned by requirements.txt (the full lock).
# Behind a TLS-intercepting proxy, pass its CA bundle: --secret id=pipcert,src=/etc/ssl/certs/ca-certificates.crt
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
COPY requirements.txt requirements-serve.txt /tmp/
RUN --mount=type=secret,id=pipcert \
    if [ -f /run/secrets/pipcert ]; then export PIP_CERT=/run/secrets/pipcert; fi; \
    pip install -q --no-cache-dir --disable-pip-version-check -r /tmp/requirements-serve.txt -c /tmp/requirements.txt

WORKDIR /app
COPY im2latex/ im2latex/
COPY params.yaml ./
COPY --from=model /models/onnx models/onnx
USER im2latex
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# exec form: the server is PID 1 and gets `docker stop`'s SIGTERM, finishing in-flight requests before it exits
CMD ["python3", "-m", "im2latex", "serve", "--host", "0.0.0.0", "--port", "8000", "--runtime", "onnx", "--model", "models/onnx", "--params", "params.yaml"]
