# banger build, install and test entry points.

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(DESTDIR)$(PREFIX)/bin
# The privileged helper lives outside any user-writable directory; bangerd
# runs it from this path through sudo (see docs/security.md).
HELPER  := $(PREFIX)/libexec/banger/banger-helper
GO      ?= go

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# BUILD_ID hashes every source file git knows about (tracked or new, not
# ignored), so banger and bangerd built from the same tree carry the same id
# and the CLI restarts a daemon built from other sources.
BUILD_ID ?= $(shell git ls-files -z --cached --others --exclude-standard | \
	xargs -0 sha256sum 2>/dev/null | sha256sum | cut -c1-16)
LDFLAGS  := -s -w \
	-X github.com/banger-dev/banger/internal/version.Version=$(VERSION) \
	-X github.com/banger-dev/banger/internal/version.BuildID=$(BUILD_ID) \
	-X github.com/banger-dev/banger/internal/privhelper.DefaultPath=$(HELPER)

CMDS := banger banger-mcp banger-tui bangerd banger-helper
# The guest agent is built only once its sources exist.
ifneq ($(wildcard cmd/banger-agent/*.go),)
CMDS += banger-agent
endif

.PHONY: all build install install-helper test test-unit test-integration test-e2e test-fuzz bench lint up clean

all: build

build:
	@mkdir -p bin
	@for c in $(CMDS); do \
		echo "go build bin/$$c"; \
		CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/$$c ./cmd/$$c || exit 1; \
	done

install: build
	install -d $(BINDIR) $(dir $(DESTDIR)$(HELPER))
	@for c in $(filter-out banger-helper,$(CMDS)); do install -m 0755 bin/$$c $(BINDIR)/$$c || exit 1; done
	install -m 0755 bin/banger-helper $(DESTDIR)$(HELPER)

# install-helper installs the privileged helper root-owned at $(HELPER) and
# grants its verbs (and nothing else) to you in /etc/sudoers.d: the one sudo
# step a normal user needs. Run it as yourself; it asks sudo once.
install-helper: build
	@if [ "$$(id -u)" -eq 0 ]; then \
		./bin/banger-helper install --user "$${SUDO_USER:?run make install-helper as the user who runs banger, not as root}"; \
	else \
		sudo ./bin/banger-helper install --user "$$(id -un)"; \
	fi

# The test tiers. `make test` runs them all; CI runs `make test`.
#  unit         no root, no network: every package with -short
#  integration  root tiers (network namespaces, real images, QEMU guests,
#  + e2e        end to end with real binaries), one package at a time so
#               guests never boot concurrently on a 2-core machine; tests
#               that need root skip with a message when not root
#  fuzz         every Go fuzz target, briefly, from its committed corpus
#  lint         gofmt, go vet, bash -n and shellcheck of the shell scripts
# A count, not a duration: with a duration, Go 1.26's fuzz coordinator can report
# its own deadline as a failure on a loaded machine (golang/go#75804).
FUZZTIME ?= 20000x

# Each tier ends with its summary line ("unit: N passed, N failed, N
# skipped"), printed by internal/testsummary from `go test -json`; a run
# shows one line per package and the full output of every failure. The
# integration tier runs every test, so there, in CI (CI=true), a skip not
# on .ci/allowed-skips fails the run: CI installs what the tests need, and a
# test CI is meant to run must not hide behind a skip. (The unit tier's
# skips are the -short ones the integration tier runs.)
SUMMARY = $(GO) run ./internal/testsummary

test: lint test-unit test-integration test-fuzz

test-unit:
	$(SUMMARY) -tier unit -- $(GO) test -json -count=1 -short ./...

test-integration:
	$(SUMMARY) -tier integration -allow .ci/allowed-skips -- $(GO) test -json -count=1 -p 1 -timeout 80m ./...

test-e2e:
	$(GO) test -count=1 -p 1 -timeout 60m -v ./test/e2e/

test-fuzz:
	FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz.sh

# bench runs every Go benchmark, one package at a time, and prints one table
# of figures, same-run baselines, ratios and targets (docs/benchmarks.md).
# BENCH_ARGS passes options, e.g. BENCH_ARGS='-pkg internal/dnsserver'.
# bench-full adds the gated ones: real guest boots and image builds.
BENCH_ARGS ?=
bench:
	@mkdir -p bin
	$(GO) run ./internal/benchreport -raw bin/bench.json $(BENCH_ARGS)

.PHONY: bench-full
bench-full:
	@mkdir -p bin
	BANGER_BENCH_VM=1 BANGER_BENCH_IMAGE=1 $(GO) run ./internal/benchreport -raw bin/bench.json $(BENCH_ARGS)

lint:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@for f in $$(git ls-files --cached --others --exclude-standard '*.sh' .ci/run); do bash -n "$$f" || exit 1; done
	@if command -v shellcheck >/dev/null; then \
		shellcheck -x -P SCRIPTDIR $$(git ls-files --cached --others --exclude-standard '*.sh' .ci/run); \
	else echo "shellcheck not installed: skipped (apt-get install shellcheck)"; fi

# The main journey on a fresh Debian machine: host packages, build, bundle,
# default image, a VM named demo, uname -a over ssh.
up:
	scripts/up.sh

clean:
	rm -rf bin
