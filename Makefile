# close-reports — `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help setup demo test lint format bench clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/close-pipeline: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $@

setup: $(BIN)/close-pipeline ## Create .venv and install the project with its dev tools

demo: setup ## Load 90 days of the embedded demo Close org into close.duckdb, build the marts, write close-dashboard.html
	$(BIN)/close-pipeline run --demo
	$(BIN)/close-pipeline dashboard --out close-dashboard.html

test: setup ## Run the offline test suite (simulator, real DuckDB, real dbt)
	$(BIN)/pytest

lint: setup ## ruff + mypy
	$(BIN)/ruff check sources pipelines tests bench
	$(BIN)/ruff format --check sources pipelines tests bench
	$(BIN)/mypy sources pipelines

format: setup ## Format the code with ruff
	$(BIN)/ruff format sources pipelines tests bench
	$(BIN)/ruff check --fix sources pipelines tests bench

bench: setup ## Run the benchmarks (quick variants) and write bench/results/*.json
	$(BIN)/python bench/rate_limit_efficiency.py --quick
	$(BIN)/python bench/load_throughput.py --quick

clean: ## Remove the venv, DuckDB files, the dashboard, dbt's files and dlt's working dir of pipeline close
	@dir=$$($(BIN)/python -c "from dlt.common.pipeline import get_dlt_pipelines_dir; print(get_dlt_pipelines_dir())" 2>/dev/null \
	  || echo "$${DLT_DATA_DIR:-$$( [ "$$(id -u)" = 0 ] && echo /var/dlt || echo $$HOME/.dlt)}/pipelines"); \
	  echo "rm -rf $$dir/close"; rm -rf "$$dir/close"
	rm -rf $(VENV) *.duckdb *.duckdb.wal close-dashboard.html dbt/target dbt/logs .pytest_cache
