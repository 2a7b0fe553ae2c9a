package console

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keelpg/keel/internal/testdb"
	"github.com/keelpg/keel/jobs"
)

type mailArgs struct {
	To string `json:"to"`
}

func (mailArgs) Kind() string { return "mail" }

func TestOverviewAndQueues(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	jc, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := jc.Insert(ctx, pool, mailArgs{To: "a@example.com"}, &jobs.InsertOpts{Queue: "mail"}); err != nil {
			t.Fatal(err)
		}
	}
	b := open(t, pool, Config{})

	var ov Overview
	if status := b.json("/", &ov); status != http.StatusOK {
		t.Fatalf("GET /api/: %d", status)
	}
	if ov.Jobs.Available != 3 || len(ov.Queues) != 1 || ov.Queues[0].Name != "mail" || ov.Queues[0].Available != 3 {
		t.Fatalf("overview jobs %+v, queues %+v; want 3 available in queue mail", ov.Jobs, ov.Queues)
	}
	if n := len(ov.JobsChart.Minutes); n != 60 {
		t.Fatalf("jobs chart has %d minutes, want 60", n)
	}
	if last := ov.BacklogChart.Series[0].Values[59]; last != 3 {
		t.Fatalf("jobs not yet finished at the last minute: %d, want 3", last)
	}
	html := b.page("/")
	for _, want := range []string{"Overview", `data-queue="mail"`, "<svg", "jobs available"} {
		if !strings.Contains(html, want) {
			t.Fatalf("overview page lacks %q", want)
		}
	}

	if status, _, body := b.submit("/queues/mail/pause", nil); status != http.StatusSeeOther {
		t.Fatalf("pause: %d %s", status, body)
	}
	if paused, err := jc.QueuePaused(ctx, "mail"); err != nil || !paused {
		t.Fatalf("queue mail paused = %v, %v after the console paused it", paused, err)
	}
	var qs Queues
	b.json("/queues", &qs)
	if len(qs.Queues) != 1 || !qs.Queues[0].Paused {
		t.Fatalf("queues %+v, want mail paused", qs.Queues)
	}
	var res QueueAction
	if status := b.call("/queues/mail/resume", nil, &res); status != http.StatusOK || res.Paused {
		t.Fatalf("resume: %d %+v", status, res)
	}
	if paused, _ := jc.QueuePaused(ctx, "mail"); paused {
		t.Fatal("queue mail still paused after the console resumed it")
	}
}

// TestLiveUpdate checks that the page's script gets the main block alone.
func TestLiveUpdate(t *testing.T) {
	t.Parallel()
	b := open(t, testdb.New(t), Config{})
	status, _, body := b.do(http.MethodGet, "/queues", nil, http.Header{"X-Keel-Refresh": {"1"}})
	if status != http.StatusOK || strings.Contains(body, "<html") || !strings.Contains(body, "<h1>Queues</h1>") {
		t.Fatalf("live update: %d %q", status, body)
	}
}

// TestActionsAreGuarded covers what stands before an action: the CSRF
// token, read-only mode, the confirmation of a destructive action, and
// authentication.
func TestActionsAreGuarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := testdb.New(t)
	jc, err := jobs.NewClient(pool, jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	form := func(vals ...string) *strings.Reader {
		v := url.Values{}
		for i := 0; i+1 < len(vals); i += 2 {
			v.Set(vals[i], vals[i+1])
		}
		return strings.NewReader(v.Encode())
	}
	formType := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}

	t.Run("csrf", func(t *testing.T) {
		t.Parallel()
		b := open(t, pool, Config{})
		for _, tc := range []struct {
			name, path string
			body       *strings.Reader
			header     http.Header
		}{
			{"no token", "/queues/csrf/pause", form("confirm", "yes"), formType},
			{"wrong token", "/queues/csrf/pause", form("confirm", "yes", "csrf", strings.Repeat("x", 43)), formType},
			{"api without header", "/api/queues/csrf/pause", form(), formType},
			{"cross-site", "/queues/csrf/pause", form("confirm", "yes", "csrf", b.csrf()),
				http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Sec-Fetch-Site": {"cross-site"}}},
		} {
			if status, _, body := b.do(http.MethodPost, tc.path, tc.body, tc.header); status != http.StatusForbidden {
				t.Errorf("%s: %d %s, want 403", tc.name, status, body)
			}
		}
		if paused, _ := jc.QueuePaused(ctx, "csrf"); paused {
			t.Fatal("a refused request paused the queue")
		}
	})

	t.Run("read-only", func(t *testing.T) {
		t.Parallel()
		b := open(t, pool, Config{ReadOnly: true})
		if status, _, _ := b.submit("/queues/ro/pause", nil); status != http.StatusForbidden {
			t.Fatalf("read-only pause: %d, want 403", status)
		}
		if status := b.call("/queues/ro/pause", nil, nil); status != http.StatusForbidden {
			t.Fatalf("read-only API pause: %d, want 403", status)
		}
		if strings.Contains(b.page("/queues"), "<form") {
			t.Fatal("a read-only page shows a form")
		}
		if paused, _ := jc.QueuePaused(ctx, "ro"); paused {
			t.Fatal("a read-only console paused the queue")
		}
	})

	t.Run("confirm", func(t *testing.T) {
		t.Parallel()
		b := open(t, pool, Config{})
		status, _, body := b.do(http.MethodPost, "/queues/ask/pause", form("csrf", b.csrf()), formType)
		if status != http.StatusOK || !strings.Contains(body, `name="confirm" value="yes"`) {
			t.Fatalf("unconfirmed pause: %d, want the page that asks; %s", status, body)
		}
		if paused, _ := jc.QueuePaused(ctx, "ask"); paused {
			t.Fatal("an unconfirmed pause paused the queue")
		}
	})

	t.Run("auth", func(t *testing.T) {
		t.Parallel()
		b := open(t, pool, Config{BasicAuth: &BasicAuth{User: "ops", Password: "s3cret"}, BearerToken: "tok"})
		for _, tc := range []struct {
			name   string
			header http.Header
			want   int
		}{
			{"none", nil, http.StatusUnauthorized},
			{"wrong password", http.Header{"Authorization": {"Basic b3BzOm5vcGU="}}, http.StatusUnauthorized},
			{"wrong token", http.Header{"Authorization": {"Bearer nope"}}, http.StatusUnauthorized},
			{"basic", http.Header{"Authorization": {"Basic b3BzOnMzY3JldA=="}}, http.StatusOK},
			{"bearer", http.Header{"Authorization": {"Bearer tok"}}, http.StatusOK},
		} {
			if status, hdr, _ := b.do(http.MethodGet, "/api/queues", nil, tc.header); status != tc.want {
				t.Errorf("%s: %d, want %d", tc.name, status, tc.want)
			} else if status == http.StatusUnauthorized && hdr.Get("WWW-Authenticate") == "" {
				t.Errorf("%s: 401 without a challenge", tc.name)
			}
		}
		// A bearer token needs no CSRF token: a browser never sends one by itself.
		status, _, body := b.do(http.MethodPost, "/api/queues/auth/pause", nil, http.Header{"Authorization": {"Bearer tok"}})
		if status != http.StatusOK {
			t.Fatalf("bearer pause: %d %s", status, body)
		}
		// Basic auth does need it, as a browser sends it by itself.
		status, _, _ = b.do(http.MethodPost, "/api/queues/auth/resume", nil, http.Header{"Authorization": {"Basic b3BzOnMzY3JldA=="}})
		if status != http.StatusForbidden {
			t.Fatalf("basic-auth resume without a CSRF token: %d, want 403", status)
		}
	})
}

func TestPrefix(t *testing.T) {
	t.Parallel()
	b := open(t, testdb.New(t), Config{Prefix: "/ops/keel"})
	html := b.page("/queues")
	if !strings.Contains(html, `href="/ops/keel/static/console.css"`) || !strings.Contains(html, `href="/ops/keel/jobs"`) {
		t.Fatal("links do not start with the prefix")
	}
	if status, _, _ := b.do(http.MethodGet, "/static/console.js", nil, nil); status != http.StatusOK {
		t.Fatalf("script under the prefix: %d", status)
	}
	if status, _, body := b.submit("/queues/q/pause", nil); status != http.StatusSeeOther {
		t.Fatalf("pause: %d %s", status, body)
	}
	if _, hdr, _ := b.submit("/queues/q/resume", nil); hdr.Get("Location") != "/ops/keel/queues" {
		t.Fatalf("redirect to %q, want /ops/keel/queues", hdr.Get("Location"))
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	pool := testdb.New(t)
	for _, cfg := range []Config{
		{Prefix: "keel"},
		{Prefix: "/keel/"},
		{BasicAuth: &BasicAuth{User: "ops"}},
		{RefreshInterval: -1},
	} {
		if _, err := New(pool, cfg); err == nil {
			t.Errorf("New(%+v) = nil error", cfg)
		}
	}
	if _, err := New(nil, Config{}); err == nil {
		t.Error("New(nil pool) = nil error")
	}
}
