# Everything a fresh Linux machine with Rust and Python 3 needs, from the repository itself.
#   make demo   — the local stack with real orders flowing; exits 0 when every order ended right
#   make test   — unit tests, the template lint, and end-to-end tests on the real local stack
#   make up     — the local stack in the foreground, showing status events until Ctrl-C

VENV    := .venv
STAMP   := $(VENV)/.installed-$(shell sha1sum infra/local/requirements.txt | cut -c1-12)
CARGO   ?= cargo
TASKFLOW := ./target/debug/taskflow

.PHONY: setup build demo up test lint schemas chaos burst fuzz clean package deploy bench browser console

# The pinned Python tools (moto server, SAM translator, cfn-lint) in a project venv.
$(STAMP): infra/local/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/local/requirements.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

# The lint gate's tools: checkov in its own venv, the ASL validator from npm (both pinned).
LINT_VENV  := .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed-$(shell sha1sum infra/local/lint-requirements.txt | cut -c1-12)
NODE_STAMP := infra/local/node_modules/.installed-$(shell sha1sum infra/local/package-lock.json | cut -c1-12)

$(LINT_STAMP): infra/local/lint-requirements.txt
	python3 -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/local/lint-requirements.txt
	rm -f $(LINT_VENV)/.installed-* && touch $(LINT_STAMP)

$(NODE_STAMP): infra/local/package-lock.json
	cd infra/local && npm ci --no-audit --no-fund --silent
	rm -f infra/local/node_modules/.installed-* && touch $(NODE_STAMP)

setup: $(STAMP)

# Packaging for Lambda: cargo-lambda (PyPI, with its zig) in its own venv; the aarch64 standard
# library from rustup.
PACKAGE_VENV  := .venv-package
PACKAGE_STAMP := $(PACKAGE_VENV)/.installed-$(shell sha1sum infra/local/package-requirements.txt | cut -c1-12)
FUNCTIONS     := intake purchase refund notification publisher api attachments approvals sweeper

$(PACKAGE_STAMP): infra/local/package-requirements.txt
	python3 -m venv $(PACKAGE_VENV)
	$(PACKAGE_VENV)/bin/pip install --quiet --disable-pip-version-check -r infra/local/package-requirements.txt
	rm -f $(PACKAGE_VENV)/.installed-* && touch $(PACKAGE_STAMP)

# Every function as an arm64 bootstrap.zip (provided.al2023) in target/lambda/<function>/,
# built with the release profile (fat LTO, one codegen unit, stripped).
package: $(PACKAGE_STAMP)
	rustup target add aarch64-unknown-linux-gnu
	PATH="$(CURDIR)/$(PACKAGE_VENV)/bin:$$PATH" cargo lambda build --release --arm64 --output-format zip --locked \
	    $(foreach f,$(FUNCTIONS),-p taskflow-$(f))
	@for f in $(FUNCTIONS); do ls -l target/lambda/$$f/bootstrap.zip | awk -v f=$$f '{printf "%-13s %6.2f MB\n", f, $$5/1048576}'; done

# Deploys with the SAM CLI (install it yourself: https://docs.aws.amazon.com/serverless-application-model/);
# `sam build` runs cargo-lambda for each function (BuildMethod: rust-cargolambda, a SAM beta
# feature, hence --beta-features; checked with SAM CLI 1.170.0).
deploy: $(PACKAGE_STAMP)
	PATH="$(CURDIR)/$(PACKAGE_VENV)/bin:$$PATH" sam build --beta-features --template-file infra/template.yaml
	sam deploy --guided

# Tests and binaries share the dev profile, so one build serves both.
build:
	$(CARGO) build --locked --workspace

demo: setup build
	$(TASKFLOW) demo

up: setup build
	$(TASKFLOW) up

# The template and the workflow, checked as AWS users check theirs: cfn-lint with zero findings,
# checkov with zero failed checks (every skip has its reason inline in the template), no IAM `*`
# off the allow-list, every alarm topic usable by CloudWatch, every vended log group under
# /aws/vendedlogs/, the callback steps' seconds by their rule (infra/local/lint.py, whose checks
# are unit-tested first), and every ASL file valid with its DefinitionSubstitutions applied (the
# files as written hold unquoted numeric placeholders, so they are JSON only once substituted).
lint: setup $(LINT_STAMP) $(NODE_STAMP)
	$(VENV)/bin/cfn-lint infra/template.yaml
	$(LINT_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f infra/template.yaml
	cd infra/local && ../../$(VENV)/bin/python -m unittest -q test_lint
	cd infra/local && ../../$(VENV)/bin/python lint.py iam ../template.yaml
	cd infra/local && ../../$(VENV)/bin/python lint.py alarms ../template.yaml
	cd infra/local && ../../$(VENV)/bin/python lint.py logs ../template.yaml
	cd infra/local && ../../$(VENV)/bin/python lint.py callbacks ../template.yaml
	$(VENV)/bin/python infra/local/lint.py asl infra/template.yaml target/lint
	infra/local/node_modules/.bin/asl-validator $$(for f in target/lint/*.asl.json; do printf -- '--json-path %s ' $$f; done)

# The console's browser tests (tests/tests/console.rs) drive Debian's chromium through
# chromedriver; installed here when missing (apt-get: needs root, as in CI). Without them those
# tests fail: they never pass without a browser.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { echo "installing chromium and chromium-driver (the console's browser tests)…"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

# The console for a running stack (`make up` starts one too and prints its URL).
console: build
	$(TASKFLOW) console

test: setup build lint browser
	$(VENV)/bin/python -m unittest discover -s infra/local -p 'test_*.py'
	$(CARGO) test --locked --workspace

# Every figure of the bench, each next to its baseline, as one table (and target/bench/bench.json):
# cold start and memory (next to a hello-world lambda_runtime binary), arm64 zip sizes (it runs
# make package), worker CPU per message (criterion), throughput and latency on the local stack
# (next to null workers), and the cost per million orders of each path (next to a naive design).
bench: setup package
	$(CARGO) build --locked --release -p taskflow-bench $(foreach f,$(FUNCTIONS),-p taskflow-$(f))
	@mkdir -p target/bench
	@echo "bench: criterion (worker cost; its report in target/bench/criterion.txt)…"
	$(CARGO) bench --locked -p taskflow-bench --bench worker > target/bench/criterion.txt
	./target/release/bench

# 1000 orders under every fault at once; prints one line of figures (see tests/tests/chaos.rs).
chaos: setup build
	CHAOS_ORDERS=$${CHAOS_ORDERS:-1000} $(CARGO) test --locked -p taskflow-e2e --test chaos -- --nocapture

# 1500 orders published at once, far above what the local stack serves: every order must end,
# and none by a step timeout from waiting in a queue; prints one line of figures (see
# tests/tests/backlog.rs). The queue-wait budget (600 s) is what the local stack's backlog needs;
# the callback steps' seconds come from it by the rule (README "Timeouts under a backlog").
burst: setup build
	BACKLOG_ORDERS=$${BACKLOG_ORDERS:-1500} BACKLOG_WAIT_BUDGET=$${BACKLOG_WAIT_BUDGET:-600} \
	BACKLOG_PAYMENT_LATENCY_MS=$${BACKLOG_PAYMENT_LATENCY_MS:-0} BACKLOG_EXPECT_WAIT=$${BACKLOG_EXPECT_WAIT:-false} \
	$(CARGO) test --locked -p taskflow-e2e --test backlog -- --nocapture

# The in-repo fuzz harness (tests/src/fuzz.rs) for FUZZ_SECONDS (default 60); make test runs a short pass.
fuzz: build
	./target/debug/fuzz $${FUZZ_SECONDS:-60}

# Regenerate contracts/schemas from the Rust types after a deliberate contract change.
schemas:
	TASKFLOW_WRITE_SCHEMAS=1 $(CARGO) test --locked -p taskflow-contracts --test schemas

clean:
	rm -rf .taskflow
