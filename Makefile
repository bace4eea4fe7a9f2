# ferrocorn developer entry points (GNU make).
#
#   make run    build, install into .venv, serve examples/hello.py on 127.0.0.1:8000
#   make test   build, install, then cargo tests and the pytest integration suite (which also
#               needs nginx: installed with apt-get when missing, see test-system-deps)
#   make lint   rustfmt and clippy, warnings are errors; then tools/check_layers.py (system
#               python3, no venv): its self-test, then the layering check of src/ (no module
#               cycles, no socket I/O in the wsgi/asgi bridges)
#   make fuzz   run the ferrocorn-h1 fuzz targets, FUZZ_SECONDS (600) each, one after the other
#   make fuzz-server  fuzz the installed server over sockets (fuzz/server_fuzz.py), FUZZ_SECONDS
#               (600) per worker type in FUZZ_WORKERS ("sync gthread asgi"; any of them), one
#               after the other, or at the same time with FUZZ_PARALLEL=1; findings in
#               fuzz/server-findings/
#   make bench-h1  criterion benchmark of the ferrocorn-h1 parser
#
# Needs only Rust (cargo), CPython >= 3.9 and pip; everything else goes into .venv, except
# nginx for the tests (a Debian package).

PYTHON ?= python3
VENV ?= .venv

VPY := $(VENV)/bin/python
PIP := $(VPY) -m pip
STAMP := $(VENV)/.ferrocorn-installed
TEST_DEPS_STAMP := $(VENV)/.test-deps-installed

# pyo3's build script must see the same interpreter as the one we install into, so the
# cargo test binaries link the libpython that the venv runs.
export PYO3_PYTHON := $(abspath $(VPY))

# Anything that changes the extension module triggers a rebuild; build output does not.
SOURCES := Cargo.toml Cargo.lock pyproject.toml \
	$(shell find src crates python -type f \
		-not -path '*/target/*' -not -path '*/__pycache__/*' \
		-not -name '*.so' -not -name '*.pyc' 2>/dev/null)

PYTEST_ARGS ?= -q -rfE -p no:cacheprovider

.PHONY: all install run test test-rust test-python test-system-deps lint fuzz fuzz-server bench-h1

all: install

# A venv even on Debian systems without python3-venv: fall back to a pip-less venv
# and bootstrap pip into it with the system pip.
$(VPY):
	$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV) && $(PYTHON) -m venv --without-pip $(VENV); }
	$(VPY) -m pip --version >/dev/null 2>&1 || $(PYTHON) -m pip --python $(VPY) install -q pip
	$(PIP) install -q --upgrade pip 'maturin>=1.7,<2'

$(STAMP): $(SOURCES) | $(VPY)
	VIRTUAL_ENV=$(abspath $(VENV)) $(VENV)/bin/maturin develop --release
	touch $@

install: $(STAMP)

$(TEST_DEPS_STAMP): requirements-test.txt | $(VPY)
	$(PIP) install -q -r requirements-test.txt
	touch $@

run: install
	exec $(VENV)/bin/ferrocorn --chdir examples hello:app -b 127.0.0.1:8000

# Both runners always run, so one report never hides the other; the exit status is
# non-zero if either failed.
test: install $(TEST_DEPS_STAMP)
	@status=0; \
	$(MAKE) --no-print-directory test-rust || status=1; \
	$(MAKE) --no-print-directory test-python || status=1; \
	exit $$status

test-rust: | $(VPY)
	LD_LIBRARY_PATH="$$($(VPY) -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}" \
		cargo test --workspace --no-fail-fast

test-python: install $(TEST_DEPS_STAMP) test-system-deps
	$(VPY) -m pytest $(PYTEST_ARGS) tests

# Programs the integration suite runs besides the server: nginx (tests/test_deploy_nginx.py
# puts it in front of the server), from the distribution's packages when it is missing.
# Debian installs it in /usr/sbin, which may not be on PATH; the tests look there too.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

test-system-deps:
	@if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then :; else \
		echo "installing nginx (Debian package) for the deploy tests"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx; \
	fi

lint: | $(VPY)
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
	$(PYTHON) tools/check_layers.py --self-test
	$(PYTHON) tools/check_layers.py

# Fuzzing (not part of `make test`). cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP lets the
# stable toolchain accept them. The parser forbids unsafe code, so no sanitizer by default: the
# targets still catch panics, overflows (debug assertions stay on), hangs and runaway memory.
FUZZ_SECONDS ?= 600
FUZZ_SANITIZER ?= none
FUZZ_MAX_LEN ?= 4096
FUZZ_TARGETS ?= request_head chunked ws_frames uwsgi_packet
FERROCORN_CONFORMANCE_DIR ?= $(abspath ../shared/conformance/gunicorn-requests)

fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
	$(PYTHON) fuzz/corpus.py $(FERROCORN_CONFORMANCE_DIR) fuzz/corpus
	cd fuzz && for target in $(FUZZ_TARGETS); do \
		mkdir -p corpus/$$target; \
		RUSTC_BOOTSTRAP=1 cargo fuzz run --sanitizer $(FUZZ_SANITIZER) $$target corpus/$$target -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=$(FUZZ_MAX_LEN) -timeout=10 -rss_limit_mb=1024 \
			-print_final_stats=1 || exit 1; \
	done

# The real server over sockets (not part of `make test`): every worker type in FUZZ_WORKERS
# (sync, gthread, asgi) runs, even after one found something; the status is non-zero if any
# did. A name the harness does not know stops the target before anything runs. FUZZ_SERVER_ARGS
# passes more options (--jobs, --seed, --timeout).
FUZZ_WORKERS ?= sync gthread asgi
FUZZ_PARALLEL ?= 0
FUZZ_SERVER_ARGS ?=

fuzz-server: install
	@for worker in $(FUZZ_WORKERS); do \
		case $$worker in sync|gthread|asgi) ;; \
		*) echo "fuzz-server: unknown worker '$$worker' in FUZZ_WORKERS (sync, gthread, asgi)" >&2; \
			exit 2;; \
		esac; \
	done
	@status=0; \
	if [ "$(FUZZ_PARALLEL)" = 1 ]; then \
		pids=; \
		for worker in $(FUZZ_WORKERS); do \
			$(VPY) fuzz/server_fuzz.py --cmd $(VENV)/bin/ferrocorn --worker $$worker \
				--seconds $(FUZZ_SECONDS) $(FUZZ_SERVER_ARGS) & pids="$$pids $$!"; \
		done; \
		for pid in $$pids; do wait $$pid || status=1; done; \
	else \
		for worker in $(FUZZ_WORKERS); do \
			$(VPY) fuzz/server_fuzz.py --cmd $(VENV)/bin/ferrocorn --worker $$worker \
				--seconds $(FUZZ_SECONDS) $(FUZZ_SERVER_ARGS) || status=1; \
		done; \
	fi; \
	exit $$status

bench-h1:
	cargo bench -p ferrocorn-h1 --bench parse
