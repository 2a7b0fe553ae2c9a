package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// The quick start runs every feature on a fresh database and returns
// cleanly: its schema comes from its own migrations.Up, and everything it
// started is stopped before its pool closes.
func TestQuickstart(t *testing.T) {
	t.Setenv("DATABASE_URL", testdb.NewEmptyURL(t))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := run(ctx); err != nil {
		t.Fatal(err)
	}
}

// The README shows this program as it is, so its snippet compiles.
func TestREADMEShowsQuickstart(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "## Quick start")
	if !ok {
		t.Fatal(`README has no "## Quick start" section`)
	}
	_, block, ok := strings.Cut(after, "```go\n")
	if !ok {
		t.Fatal("the quick start section has no go block")
	}
	block, _, _ = strings.Cut(block, "```\n")
	if !bytes.Equal([]byte(block), src) {
		t.Fatal("README's quick start differs from examples/quickstart/main.go: copy the file into the README")
	}
}
