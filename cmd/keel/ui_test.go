package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/keelpg/keel/internal/testdb"
)

// TestUI serves the console from the command line, reads a page of it as a
// user would, and stops it as Ctrl-C does.
func TestUI(t *testing.T) {
	t.Parallel()
	url := testdb.NewURL(t)
	env := map[string]string{"DATABASE_URL": url, envUIToken: "tok"}
	ctx, stop := context.WithCancel(context.Background())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	code := make(chan int, 1)
	go func() {
		code <- run(ctx, []string{"ui", "--addr", "127.0.0.1:0"}, out, errOut, func(k string) string { return env[k] })
	}()
	listening := regexp.MustCompile(`keel console on (http://\S+/)`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := listening.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
		}
	}
	if base == "" {
		stop()
		t.Fatalf("keel ui printed no address; stdout %q, stderr %q", out.String(), errOut.String())
	}
	get := func(token string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodGet, base+"api/queues", nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var v map[string]any
		_ = json.NewDecoder(res.Body).Decode(&v)
		return res.StatusCode, v
	}
	if status, _ := get(""); status != http.StatusUnauthorized {
		t.Errorf("no token: %d, want 401", status)
	}
	if status, v := get("tok"); status != http.StatusOK || v["queues"] == nil {
		t.Errorf("with the token: %d %v", status, v)
	}
	stop()
	select {
	case c := <-code:
		if c != exitOK {
			t.Fatalf("keel ui exited %d after Ctrl-C; stderr %q", c, errOut.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("keel ui did not stop after Ctrl-C")
	}
}

func TestUIUsage(t *testing.T) {
	t.Parallel()
	env := map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/none", envUIUser: "ops"}
	var out, errOut syncBuffer
	if c := run(context.Background(), []string{"ui"}, &out, &errOut, func(k string) string { return env[k] }); c != exitUsage {
		t.Fatalf("a user without a password: exit %d, want %d; %s", c, exitUsage, errOut.String())
	}
}
