# Every target builds .venv itself, so a fresh clone needs nothing but python3.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-dates bench lint typecheck clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/deltasync demo

test: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/mypy src/deltasync
	$(BIN)/pytest -q -n 2

# The date-sensitive tests (marker `dates`) again at fixed "todays" under libfaketime, which
# moves the clock of the node processes the tests start too: a Friday an hour before an expiry,
# between the default genesis' expiries, and a day years ahead. Needs Debian's `faketime`
# (.ci/run installs it); without it the target says so and skips.
FAKE_TODAYS := 2027-01-08T07:00:00 2031-06-15T10:00:00
test-dates: $(STAMP)
	@if ! command -v faketime >/dev/null; then \
		echo "SKIPPED test-dates: faketime (Debian package faketime) is not installed"; \
	else for today in $(FAKE_TODAYS); do \
		echo "test-dates: today is $$today UTC"; \
		TZ=UTC faketime "$$(echo $$today | tr T ' ')" $(BIN)/pytest -q -n 2 -m dates -p no:cacheprovider \
			|| exit 1; \
	done; fi

bench: $(STAMP)
	$(BIN)/deltasync bench exchange --json
	$(BIN)/deltasync bench consensus --json

lint: $(STAMP)
	$(BIN)/ruff check src tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
