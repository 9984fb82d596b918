# leadingterms — `make demo` runs the main job, `make test` runs the tests.
# Each target creates .venv on first use: torch is installed first, pinned (CPU wheel),
# then the package with its dev and Hugging Face extras.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  ?= torch==2.13.0
DEMO_OUT ?= demo-out

.PHONY: demo test lint typecheck bench clean

$(BIN)/leadingterms: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev,hf]"
	@touch $@

demo: $(BIN)/leadingterms
	$(BIN)/leadingterms demo --out $(DEMO_OUT)

test: $(BIN)/leadingterms
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg $(BIN)/python -m pytest -q

bench: $(BIN)/leadingterms
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
