# Two entry points: `make repro` (install, then run the pipeline) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# dvc.yaml runs `python -m stages.…`: that must be the venv's python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: repro test test-fast install tex malloc browser docker-engine image base-image mathjax

# The pipeline runs with tcmalloc preloaded where it is installed: on the 2-core AVX2 machine the CPU training step ran
# 9% faster than on glibc's malloc, to the same weights bit for bit (docs/experiments.md, twelfth session)
TCMALLOC = $(shell /sbin/ldconfig -p 2>/dev/null | grep -q 'libtcmalloc_minimal\.so\.4 ' && echo libtcmalloc_minimal.so.4)

repro: install tex mathjax malloc
	LD_PRELOAD=$(TCMALLOC) dvc repro

test: install tex mathjax malloc browser docker-engine
	python -m pytest -q; rc=$$?; [ $$rc != 5 ] || echo "pytest collected no tests" >&2; exit $$rc

# The edit loop: every test but the slow end-to-end ones (the pipeline, the container image, DDP, the presets)
test-fast: install tex mathjax
	python -m pytest -q -m "not slow"; rc=$$?; [ $$rc != 5 ] || echo "pytest collected no tests" >&2; exit $$rc

install: $(VENV)/.installed

# requirements.txt pins every package, torch==2.14.1 and torchvision==0.29.1 among them, so pip never resolves another torch
# torch's Linux build brings CUDA: the environment takes about 6 GB, so a short disk stops here, saying so.
# uv installs the lock in about 40 s where pip took 2 min (docs/experiments.md, "Reading at seven sizes"); pip stays the fallback. uv reads the
# system's certificates (UV_SYSTEM_CERTS), as pip does here, for a TLS-intercepting proxy.
# --compile-bytecode writes the packages' .pyc files once (about 30 s), as pip does by default: where PYTHONDONTWRITEBYTECODE is
# set (CI, containers) Python would otherwise compile torch and Lightning from source in every process, about 8 s each
# (`predict` of one image took 17.5 s, with them 7 s: docs/experiments.md, sixteenth session)
export UV_SYSTEM_CERTS := 1
$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) && $(PY) -c "import torch" 2>/dev/null || { free=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
		[ "$$free" -ge 7 ] || { echo "installing needs about 7 GB free on this disk and it has $$free GB: free some space, then run make again" >&2; exit 1; }; }
	test -x $(PY) || python3 -m venv $(VENV)
	{ $(PY) -m pip install -q --disable-pip-version-check $$(grep '^uv==' requirements.txt) \
		&& $(VENV)/bin/uv pip install -q --compile-bytecode --python $(PY) -r requirements.txt; } \
		|| { echo "uv could not install requirements.txt: installing it with pip" >&2; \
			$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt; }
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The synthetic data source renders formulas with real LaTeX (latex + dvipng), in Computer Modern and in the math
# fonts of texlive-fonts-recommended (Times, Palatino) and lmodern (Latin Modern)
TEX_PACKAGES := texlive-latex-base dvipng texlive-fonts-recommended lmodern
tex:
	@if command -v latex >/dev/null && command -v dvipng >/dev/null && kpsewhich ptmr7t.tfm >/dev/null && kpsewhich lmodern.sty >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing $(TEX_PACKAGES) (about 80 MB)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(TEX_PACKAGES) >/dev/null; \
	else \
		echo "LaTeX is missing: install it (Debian/Ubuntu: sudo apt-get install $(TEX_PACKAGES); macOS: MacTeX), then run make again" >&2; \
		exit 1; \
	fi

# tcmalloc (Debian's libtcmalloc-minimal4, 0.3 MB): optional, `make repro` runs on glibc's malloc without it
malloc:
	@if [ -n "$(TCMALLOC)" ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing libtcmalloc-minimal4 (a faster malloc for training)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends libtcmalloc-minimal4 >/dev/null \
			|| echo "could not install libtcmalloc-minimal4: the pipeline runs on glibc's malloc, a little slower" >&2; \
	else \
		echo "tcmalloc is missing (Debian/Ubuntu: sudo apt-get install libtcmalloc-minimal4): the pipeline runs on glibc's malloc, a little slower" >&2; \
	fi

# The web page test drives Debian's chromium (headless); it is skipped, saying why, where chromium cannot be installed
browser:
	@if command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the web page test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
			|| echo "could not install chromium: the web page test will be skipped" >&2; \
	else \
		echo "chromium is missing (Debian/Ubuntu: sudo apt-get install chromium): the web page test will be skipped" >&2; \
	fi

# The image test (tests/serve/test_image.py) needs a running Docker engine; it is skipped, saying why, where none can run
docker-engine:
	@if $(DOCKER) info >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		if ! command -v dockerd >/dev/null; then \
			echo "installing docker.io for the image test"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io >/dev/null \
				|| echo "could not install docker.io: the image test will be skipped" >&2; \
		fi; \
		if command -v dockerd >/dev/null; then \
			echo "starting dockerd (log: /var/log/dockerd.log)"; \
			nohup dockerd >/var/log/dockerd.log 2>&1 & \
			for i in $$(seq 30); do $(DOCKER) info >/dev/null 2>&1 && break; sleep 1; done; \
			$(DOCKER) info >/dev/null 2>&1 || echo "dockerd did not start (see /var/log/dockerd.log): the image test will be skipped" >&2; \
		fi; \
	else \
		echo "no Docker engine is running (install Docker and start it): the image test will be skipped" >&2; \
	fi

# The API's container image (Dockerfile), built from $(CONTEXT)/models/model.pt: `make repro` exports it first (else the build stops, saying so)
IMAGE ?= im2latex
CONTEXT ?= .
# Empty: python:3.11-slim where it is present or can be pulled, else $(DEBIAN_BASE) (built offline by `make base-image`)
BASE ?=
DEBIAN_BASE := im2latex-base:bookworm
# DOCKER_BUILDKIT=1 needs buildx in docker >= 23; Debian's docker.io client (20.10) builds with BuildKit without it
DOCKER = $(shell if docker buildx version >/dev/null 2>&1 || [ ! -x /usr/bin/docker ]; then echo docker; else echo /usr/bin/docker; fi)
# pip in the build trusts the CA bundle pip trusts here (for a TLS-intercepting proxy): a BuildKit secret, in no layer
CA_BUNDLE = $(or $(PIP_CERT),$(wildcard /etc/ssl/certs/ca-certificates.crt))

image: docker-engine
	@base="$(BASE)"; \
	if [ -z "$$base" ]; then \
		base=python:3.11-slim; \
		$(DOCKER) image inspect $$base >/dev/null 2>&1 \
			|| { $(DOCKER) image inspect $(DEBIAN_BASE) >/dev/null 2>&1 && base=$(DEBIAN_BASE); } \
			|| $(DOCKER) pull -q $$base >/dev/null 2>&1 \
			|| { echo "cannot pull $$base: building on $(DEBIAN_BASE)"; base=$(DEBIAN_BASE); $(MAKE) -s base-image; } || exit 1; \
	fi; \
	DOCKER_BUILDKIT=1 $(DOCKER) build --build-arg BASE=$$base --build-arg PIP_INDEX_URL --build-arg PIP_EXTRA_INDEX_URL \
		$(if $(CA_BUNDLE),--secret id=pipcert$(comma)src=$(CA_BUNDLE)) -t $(IMAGE) $(CONTEXT)

comma := ,

# Debian bookworm's python3 (3.11) as a base image, for machines that cannot reach Docker Hub; built once, then reused
base-image:
	@if $(DOCKER) image inspect $(DEBIAN_BASE) >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null; } || exit 1; \
		echo "building $(DEBIAN_BASE) with debootstrap (a few minutes)"; \
		rootfs=$$(mktemp -d) && trap 'rm -rf "$$rootfs"' EXIT \
			&& debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,passwd bookworm $$rootfs >$$rootfs.log 2>&1 \
			|| { tail -5 $$rootfs.log >&2; rm -f $$rootfs.log; exit 1; }; rm -f $$rootfs.log; \
		rm -rf $$rootfs/var/cache/apt/archives/*.deb $$rootfs/var/lib/apt/lists/*; \
		tar -C $$rootfs -c . | $(DOCKER) import - $(DEBIAN_BASE) >/dev/null && echo "built $(DEBIAN_BASE)"; \
	else \
		echo "$(DEBIAN_BASE) is missing and only root on Debian/Ubuntu can build it (debootstrap); or pass BASE=<an image with python3.11>" >&2; \
		exit 1; \
	fi

# The web math renderer (im2latex/data/webmath.py) typesets with MathJax in Node: npm installs the mathjax-full that
# package-lock.json pins into node_modules/, once, and again only when package.json or the lock changes
mathjax: node_modules/.installed

node_modules/.installed: package.json package-lock.json
	@if command -v node >/dev/null && command -v npm >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing nodejs and npm for the web math renderer"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; \
	else \
		echo "node and npm are missing: install Node.js 18 or later (Debian/Ubuntu: sudo apt-get install nodejs npm), then run make again" >&2; \
		exit 1; \
	fi
	npm ci --no-audit --no-fund --loglevel=error
	touch $@
