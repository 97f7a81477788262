# Two entry points: `make repro` (install, then run the pipeline) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# dvc.yaml runs `python -m stages.…`: that must be the venv's python
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: repro test install tex browser

repro: install tex
	dvc repro

test: install tex browser
	python -m pytest -q; rc=$$?; [ $$rc != 5 ] || echo "pytest collected no tests" >&2; exit $$rc

install: $(VENV)/.installed

# requirements.txt pins every package, torch==2.14.1 and torchvision==0.29.1 among them, so pip never resolves another torch
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

# The synthetic data source renders formulas with real LaTeX (latex + dvipng)
tex:
	@if command -v latex >/dev/null && command -v dvipng >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing texlive-latex-base and dvipng (about 60 MB)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends texlive-latex-base dvipng >/dev/null; \
	else \
		echo "LaTeX is missing: install latex and dvipng (Debian/Ubuntu: sudo apt-get install texlive-latex-base dvipng; macOS: MacTeX), then run make again" >&2; \
		exit 1; \
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
