# The doors into Hygie: make run, make test, make bench, make lint.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
DATA ?= ./hygie-data
# Test processes (pytest-xdist): the suite mostly waits on servers and sockets, so more
# workers than cores pays; each test module stays on one worker with its server fixture.
TEST_WORKERS ?= 4
PACKAGES := server mailformats storage pki dossier directory agenda catalogue client_tui

.PHONY: run test bench lint venv clean

$(BIN)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing Python dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install --upgrade pip > $(VENV)/install.log 2>&1 \
	  && $(BIN)/python -m pip install -e '.[dev]' >> $(VENV)/install.log 2>&1 \
	  || { tail -n 40 $(VENV)/install.log; exit 1; }
	touch $@

venv: $(BIN)/.installed

run: venv
	@test -f $(DATA)/hygie.toml || $(BIN)/hygie --data $(DATA) init --demo
	@echo 'In another terminal, hygie and hygie-client on the PATH, the demo data named:'
	@echo '  export PATH="$(abspath $(BIN)):$$PATH" HYGIE_DATA="$(abspath $(DATA))"'
	$(BIN)/hygie --data $(DATA) serve

lint: venv
	$(BIN)/ruff check $(PACKAGES) tests bench
	$(BIN)/lint-imports
	$(BIN)/mypy --strict -p server -p mailformats -p storage -p pki -p dossier -p directory -p agenda -p catalogue -p client_tui

test: lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadscope tests

bench: venv
	$(BIN)/python -m bench.smtp_load --out bench/results
	$(BIN)/python -m bench.smtp_load --out bench/results --database postgresql
	$(BIN)/python -m bench.imap_load --out bench/results
	$(BIN)/python -m bench.imap_cycle --out bench/results
	$(BIN)/python -m bench.idle_latency --out bench/results
	$(BIN)/python -m bench.login_cost --out bench/results
	$(BIN)/python -m bench.relay_load --out bench/results
	$(BIN)/python -m bench.dossier_load --out bench/results
	$(BIN)/python -m bench.directory_load --out bench/results
	$(BIN)/python -m bench.agenda_load --out bench/results
	$(BIN)/python -m bench.spaces_load --out bench/results
	$(BIN)/python -m bench.hostile_fhir --out bench/results
	$(BIN)/python -m bench.imap_stress --out bench/results
	$(BIN)/python -m bench.smtp_compare --out bench/results

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
