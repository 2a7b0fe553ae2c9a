package webhook_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/outbox/webhook"
)

type received struct {
	header http.Header
	body   []byte
}

func TestPublish(t *testing.T) {
	t.Parallel()
	secret := []byte("s3cret")
	var mu sync.Mutex
	got := map[string]received{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[r.URL.Path] = received{r.Header.Clone(), body}
		mu.Unlock()
		switch r.URL.Path {
		case "/fail":
			http.Error(w, "nope", http.StatusServiceUnavailable)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/redirect-to-nowhere":
			w.WriteHeader(http.StatusMultipleChoices)
		}
	}))
	t.Cleanup(srv.Close)

	pub, err := webhook.New(webhook.Config{
		URL:     func(d outbox.Delivery) string { return srv.URL + "/" + d.Topic },
		Secret:  secret,
		Timeout: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	batch := []outbox.Delivery{
		{Message: outbox.Message{ID: uuid.New(), Topic: "ok", Key: "k1", Type: "OrderPlaced", Payload: []byte(`{"a":1}`), Headers: map[string]string{"Content-Type": "application/json", "X-Trace": "t1"}}, Attempt: 2},
		{Message: outbox.Message{ID: uuid.New(), Topic: "fail", Payload: []byte("x")}, Attempt: 1},
		{Message: outbox.Message{ID: uuid.New(), Topic: "slow", Payload: []byte("x")}, Attempt: 1},
		{Message: outbox.Message{ID: uuid.New(), Topic: "redirect-to-nowhere", Payload: []byte("x")}, Attempt: 1},
	}
	errs := pub.Publish(context.Background(), batch)
	if len(errs) != 4 {
		t.Fatalf("%d results for 4 messages", len(errs))
	}
	if errs[0] != nil {
		t.Errorf("2xx reported as failure: %v", errs[0])
	}
	var se *webhook.StatusError
	if !errors.As(errs[1], &se) || se.Status != 503 || se.Body != "nope\n" {
		t.Errorf("503: got %v", errs[1])
	}
	if errs[2] == nil {
		t.Error("a response slower than the timeout counted as delivered")
	}
	if !errors.As(errs[3], &se) || se.Status != 300 {
		t.Errorf("300: got %v", errs[3])
	}

	mu.Lock()
	defer mu.Unlock()
	r := got["/ok"]
	want := map[string]string{
		"Content-Type":    "application/json",
		"X-Trace":         "t1",
		"Keel-Message-Id": batch[0].ID.String(),
		"Keel-Topic":      "ok",
		"Keel-Key":        "k1",
		"Keel-Type":       "OrderPlaced",
		"Keel-Attempt":    "2",
	}
	for k, v := range want {
		if r.header.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, r.header.Get(k), v)
		}
	}
	if string(r.body) != `{"a":1}` {
		t.Errorf("body %q", r.body)
	}
	if !webhook.Verify(secret, r.header, r.body) {
		t.Error("signature does not verify")
	}
	if webhook.Verify([]byte("other"), r.header, r.body) || webhook.Verify(secret, r.header, []byte(`{"a":2}`)) {
		t.Error("signature verifies with the wrong secret or body")
	}
	if h := got["/fail"].header; h.Get("Content-Type") != "application/octet-stream" || h.Get("Keel-Key") != "" {
		t.Errorf("defaults: content type %q, key %q", h.Get("Content-Type"), h.Get("Keel-Key"))
	}
}

func TestUnsignedAndBadConfig(t *testing.T) {
	t.Parallel()
	sigs := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sigs <- r.Header.Get("Keel-Signature")
	}))
	t.Cleanup(srv.Close)
	pub, err := webhook.New(webhook.Config{URL: webhook.Fixed(srv.URL)})
	if err != nil {
		t.Fatal(err)
	}
	errs := pub.Publish(context.Background(), []outbox.Delivery{{Message: outbox.Message{ID: uuid.New(), Topic: "t", Payload: []byte{}}}})
	if sig := <-sigs; errs[0] != nil || sig != "" {
		t.Errorf("without a secret: err %v, signature %q", errs[0], sig)
	}
	if _, err := webhook.New(webhook.Config{}); err == nil {
		t.Error("New accepted a config without URL")
	}
}
