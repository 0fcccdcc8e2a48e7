# handoff: `make demo` and `make test` set up everything they need on Debian / Raspberry Pi OS.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := test

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEB_PACKAGES := mosquitto mosquitto-clients pcscd vsmartcard-vpcd libpcsclite-dev swig python3-venv dbus chromium nodejs
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup debs test lint demo bench clean

OIDC_PROVIDER := $(VENV)/oidc-provider
OIDC_KIT := tests/kit/oidc_provider

setup: debs $(VENV)/.installed $(OIDC_PROVIDER)/node_modules/.package-lock.json

# Installs only the Debian packages that are missing, so a second run costs one dpkg query.
debs:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages: $$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: setup.cfg pyproject.toml
	[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[appliance,agent,ledger,test]'
	touch $@

# The OpenID provider the console's sign-in tests run (tests/kit/oidc.py), at the version the
# kit's lock file pins; Debian's nodejs comes without npm, NodeSource's with it.
$(OIDC_PROVIDER)/node_modules/.package-lock.json: $(OIDC_KIT)/package.json $(OIDC_KIT)/package-lock.json | $(VENV)/.installed
	command -v npm >/dev/null || $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm
	mkdir -p $(OIDC_PROVIDER)
	cp $(OIDC_KIT)/package.json $(OIDC_KIT)/package-lock.json $(OIDC_PROVIDER)/
	npm ci --no-audit --no-fund --prefix $(OIDC_PROVIDER)

lint: setup
	$(VENV)/bin/ruff check handoff tests bench demo
	$(VENV)/bin/ruff format --check handoff tests bench demo
	$(VENV)/bin/mypy handoff

# Three pytest runs. Most tests wait on brokers, timers, browsers and child processes, not on the
# CPU: they share WORKERS xdist workers on two cores, and `worksteal` hands a finished worker the
# queued tests of a busy one, so the longest browser tests do not end the run alone. The machine
# has one pcscd and one vpcd slot: the tests that use them (marked `pcscd`) take turns in a run
# of their own beside the workers, its report printed after theirs (`--dist loadgroup` was seen
# spreading such a group over workers, where one test's virtual card reached another's reader).
# Tests that hold a device to its timing (marked `alone`: cue steps checked to tens of
# milliseconds) run last, with nothing beside them. Every run runs; any failure fails the target,
# naming the run and its exit status. The clean-up trap tolerates a pcscd run already reaped:
# under the recipe's `-e`, a failing `kill` in an EXIT trap becomes the shell's exit status.
WORKERS ?= 4
test: lint
	@pcscd_report=$$(mktemp); trap 'kill $$pcscd 2>/dev/null || true; rm -f "$$pcscd_report"' EXIT; \
	$(VENV)/bin/pytest -q -p no:cacheprovider -m pcscd >"$$pcscd_report" 2>&1 & pcscd=$$!; \
	failed=""; \
	$(VENV)/bin/pytest -q -n $(WORKERS) --dist worksteal -m "not pcscd and not alone" || failed="$$failed parallel:$$?"; \
	wait $$pcscd || failed="$$failed pcscd:$$?"; \
	echo "--- the pcscd tests, run beside them:"; cat "$$pcscd_report"; \
	$(VENV)/bin/pytest -q -m alone || failed="$$failed alone:$$?"; \
	[ -z "$$failed" ] || { echo "make test: these runs exited non-zero (run:exit status):$$failed"; exit 1; }

demo: setup
	$(PY) demo/demo.py

bench: setup
	$(PY) -m bench.append
	$(PY) -m bench.drain
	$(PY) -m bench.tap_latency
	$(PY) -m bench.sign_latency
	$(PY) -m bench.idle_cpu
	$(PY) -m bench.piv_latency
	$(PY) -m bench.chain_cost
	$(PY) -m bench.verify_trail
	$(PY) -m bench.agent_confirm
	$(PY) -m bench.ledger_ingest
	$(PY) -m bench.anomaly_cost
	$(PY) -m bench.ledger_who
	$(PY) -m bench.ledger_report
	$(PY) -m bench.console_pages
	$(PY) -m bench.startup

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
