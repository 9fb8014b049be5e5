# Everything a fresh Linux machine with Rust and Python 3 needs, from the repository itself.
#   make demo   — the local stack with real orders flowing; exits 0 when every order ended right
#   make test   — unit tests, the template lint, and end-to-end tests on the real local stack
#   make up     — the local stack in the foreground, showing status events until Ctrl-C

VENV    := .venv
STAMP   := $(VENV)/.installed-$(shell sha1sum infra/local/requirements.txt | cut -c1-12)
CARGO   ?= cargo
TASKFLOW := ./target/debug/taskflow

.PHONY: setup build demo up test lint schemas chaos fuzz clean

# The pinned Python tools (moto server, SAM translator, cfn-lint) in a project venv.
$(STAMP): infra/local/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/local/requirements.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

setup: $(STAMP)

# Tests and binaries share the dev profile, so one build serves both.
build:
	$(CARGO) build --locked --workspace

demo: setup build
	$(TASKFLOW) demo

up: setup build
	$(TASKFLOW) up

lint: setup
	$(VENV)/bin/cfn-lint infra/template.yaml

test: setup build lint
	$(CARGO) test --locked --workspace

# 1000 orders under every fault at once; prints one line of figures (see tests/tests/chaos.rs).
chaos: setup build
	CHAOS_ORDERS=$${CHAOS_ORDERS:-1000} $(CARGO) test --locked -p taskflow-e2e --test chaos -- --nocapture

# The in-repo fuzz harness (tests/src/fuzz.rs) for FUZZ_SECONDS (default 60); make test runs a short pass.
fuzz: build
	./target/debug/fuzz $${FUZZ_SECONDS:-60}

# Regenerate contracts/schemas from the Rust types after a deliberate contract change.
schemas:
	TASKFLOW_WRITE_SCHEMAS=1 $(CARGO) test --locked -p taskflow-contracts --test schemas

clean:
	rm -rf .taskflow
