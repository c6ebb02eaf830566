# Two commands: `make run` (the whole system on its embedded defaults) and `make test` (the suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# The main environment is rebuilt when its pins change.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha256sum | cut -c1-12)

.PHONY: run test setup lint browser bench clean

$(STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c requirements.lock -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

# Rasa's Python 3.10 venv and the trained model are cached under ~/.cache/citygw by content hash.
setup: $(STAMP)
	$(BIN)/citygw rasa-env
	$(BIN)/citygw train

run: setup
	$(BIN)/citygw run

# The browser tests drive Debian's Chromium; nothing downloads a browser of its own.
browser:
	@test -x /usr/bin/chromium && fc-list :lang=zh | grep -q . || (apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-zenhei >/dev/null)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy
	$(BIN)/python -m intents.rasa_project --check

test: setup browser lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python -m bench.turn_latency

clean:
	rm -rf $(VENV) var
