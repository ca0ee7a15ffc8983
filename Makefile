# banger build, install and test entry points.

PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(DESTDIR)$(PREFIX)/bin
GO      ?= go

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# BUILD_ID hashes every source file git knows about (tracked or new, not
# ignored), so banger and bangerd built from the same tree carry the same id
# and the CLI restarts a daemon built from other sources.
BUILD_ID ?= $(shell git ls-files -z --cached --others --exclude-standard | \
	xargs -0 sha256sum 2>/dev/null | sha256sum | cut -c1-16)
LDFLAGS  := -s -w \
	-X github.com/banger-dev/banger/internal/version.Version=$(VERSION) \
	-X github.com/banger-dev/banger/internal/version.BuildID=$(BUILD_ID)

CMDS := banger bangerd
# The guest agent is built only once its sources exist.
ifneq ($(wildcard cmd/banger-agent/*.go),)
CMDS += banger-agent
endif

.PHONY: all build install test bench lint clean

all: build

build:
	@mkdir -p bin
	@for c in $(CMDS); do \
		echo "go build bin/$$c"; \
		CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/$$c ./cmd/$$c || exit 1; \
	done

install: build
	install -d $(BINDIR)
	@for c in $(CMDS); do install -m 0755 bin/$$c $(BINDIR)/$$c || exit 1; done

test:
	$(GO) test -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime 20x ./...

lint:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin
