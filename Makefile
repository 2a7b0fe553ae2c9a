# keel — see README.md. Tool versions are pinned in tools/go.mod.

GO       ?= go
BIN      := $(CURDIR)/bin
SQLC     := $(BIN)/sqlc
GOOSE    := $(BIN)/goose
GOFILES   = $(shell git ls-files --cached --others --exclude-standard '*.go')
# The broker integrations, each a Go module of its own (integrations/*/go.mod).
INTEGRATIONS = $(patsubst %/go.mod,%,$(wildcard integrations/*/go.mod))

.PHONY: all generate check-generate lint test ci db demo bench soak tools clean screenshots

all: generate lint test

tools: $(SQLC) $(GOOSE)

$(SQLC): tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(BIN)/sqlc github.com/sqlc-dev/sqlc/cmd/sqlc

$(GOOSE): tools/go.mod tools/go.sum
	cd tools && $(GO) build -o $(BIN)/goose github.com/pressly/goose/v3/cmd/goose

## generate: rebuild internal/db/ from migrations/ and sql/ with the pinned sqlc
generate: $(SQLC)
	$(SQLC) generate

## check-generate: fail when internal/db/ (or the example's ordersdb/) differs from what sqlc generates
check-generate: $(SQLC)
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cp -r sqlc.yaml migrations sql "$$tmp"/ && \
	mkdir -p "$$tmp/examples/orders" && cp -r examples/orders/migrations examples/orders/sql "$$tmp/examples/orders/" && \
	(cd "$$tmp" && $(SQLC) generate) && \
	if ! diff -ru "$$tmp/internal/db" internal/db || ! diff -ru "$$tmp/examples/orders/ordersdb" examples/orders/ordersdb; then \
		echo "internal/db/ or examples/orders/ordersdb/ is not what sqlc generates: run make generate" >&2; exit 1; \
	fi
	@echo "internal/db/ and examples/orders/ordersdb/ match sqlc's output"

## lint: gofmt and go vet, for keel, bench/, tools/pgcontainer/ and every
## module under integrations/
lint:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:" $$out >&2; exit 1; fi
	$(GO) vet ./...
	cd bench && $(GO) vet ./...
	cd tools/pgcontainer && $(GO) vet ./...
	@for dir in $(INTEGRATIONS); do echo "cd $$dir && $(GO) vet ./..."; (cd $$dir && $(GO) vet ./...) || exit 1; done

## test: every test, with the race detector, against DATABASE_URL; when it
## is unset, against the server scripts/postgres.sh finds or starts: a local
## one, else a throwaway container (tools/pgcontainer) when Docker answers.
## Then the tests of every module under integrations/, on the same server
## (their brokers: see each package's doc; a test skips when its broker
## cannot be reached). Every module runs; the target fails if any failed.
## The console's browser test (console/e2e) skips without Node.js 20+ and
## Chromium (apt-get install nodejs npm chromium); KEEL_E2E=1 fails instead.
test:
	@GO=$(GO) bash scripts/postgres.sh --run sh -c '\
		status=0; $(GO) test -race -count=1 ./... || status=1; \
		for dir in $(INTEGRATIONS); do \
			echo "cd $$dir && $(GO) test -race -count=1 ./..."; \
			(cd $$dir && $(GO) test -race -count=1 ./...) || status=1; \
		done; exit $$status'

## ci: everything CI checks
ci: check-generate lint test

## db: find or start a PostgreSQL and print the DATABASE_URL to use (a
## local server; else a container, kept until Ctrl-C, when Docker answers)
db:
	@bash scripts/postgres.sh

## demo: run the orders example end to end in a scratch database on
## DATABASE_URL's server, or in a throwaway Postgres it starts and removes
## (scripts/demo.sh picks the server); CONSOLE=127.0.0.1:8080 then leaves
## keel's web console running on that address over the demo's database
demo:
	@GO=$(GO) KEEL_DEMO_CONSOLE=$(CONSOLE) bash scripts/demo.sh

## screenshots: refresh the README's pictures of the console
## (docs/console-*.png) from its browser test (console/e2e)
screenshots:
	@GO=$(GO) bash scripts/postgres.sh --run env KEEL_E2E=1 KEEL_E2E_SCREENSHOTS=docs \
		$(GO) test -count=1 -run TestConsoleInBrowser ./console/e2e/

## bench: run every benchmark in bench/ against DATABASE_URL, print the
## comparison table and write bench/RESULTS.md and bench/results.png
bench:
	cd bench && $(GO) run ./cmd/benchreport

## soak: run keel's jobs and outbox under a steady load (5,000 jobs/s and
## 5,000 messages/s) for 30 minutes on DATABASE_URL's server, one line a
## minute; SOAKFLAGS='-duration 3m -out SOAK.md' changes it (bench/doc.go)
soak:
	cd bench && $(GO) run ./cmd/soak $(SOAKFLAGS)

clean:
	rm -rf $(BIN)
