# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean chromium

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

# The main job: a video from a prompt with the shipped default model (kinema/assets/default).
demo: $(STAMP)
	$(BIN)/kinema generate "a blue square moves to the right" --out out.mp4 --sheet out.png

# The studio's browser tests drive Debian's chromium (Playwright, never a downloaded browser).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo -n ); \
	  echo "installing Debian's chromium for the studio's browser tests"; \
	  $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -qq >/dev/null 2>&1 && $$SUDO apt-get install -y -qq chromium >/dev/null 2>&1; } || \
	  echo "note: could not install chromium: the browser tests will be skipped"; }

# pytest exits 5 when it collects no test: a broken run, not a pass.
test: $(STAMP) chromium
	$(BIN)/python -m pytest -q; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "error: pytest collected no tests"; exit 1; fi; exit $$rc

bench: $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	$(BIN)/python benchmarks/speed.py --json docs/speed_local.json --markdown docs/BENCHMARKS_local.md

clean:
	rm -rf $(VENV) out.mp4 out.png .pytest_cache kinema-data
