// Package webhook is a ready outbox.Publisher that POSTs each message to an
// HTTP endpoint.
//
// Each message becomes one POST whose body is the payload. Its headers go
// along as HTTP headers, plus:
//
//	Keel-Message-Id     the message id
//	Keel-Topic          the topic
//	Keel-Key            the order key, when there is one
//	Keel-Type           the type, when there is one
//	Keel-Attempt        1 for the first try, 2 for the second …
//	Keel-Timestamp      Unix seconds when the request was signed
//	Keel-Signature      sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">, when a secret is set
//
// A 2xx response is a delivery; anything else, or no response within the
// timeout, is a failure the relay retries. Receivers verify the signature
// with [Verify] and should reject old timestamps.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/keelpg/keel/outbox"
)

// Config configures a Publisher.
type Config struct {
	// URL returns the endpoint for a message. Required; Fixed gives one
	// endpoint for every message.
	URL func(outbox.Delivery) string
	// Secret, when set, signs each request (Keel-Signature).
	Secret []byte
	// Timeout bounds each request. Default: 10s.
	Timeout time.Duration
	// Concurrency is how many requests of one batch run at once. Default: 16.
	Concurrency int
	// Client sends the requests. Default: a client with Timeout.
	Client *http.Client
}

// Fixed returns a Config.URL that sends every message to url.
func Fixed(url string) func(outbox.Delivery) string {
	return func(outbox.Delivery) string { return url }
}

// Publisher POSTs messages. It implements outbox.Publisher.
type Publisher struct {
	cfg Config
}

// New returns a Publisher.
func New(cfg Config) (*Publisher, error) {
	if cfg.URL == nil {
		return nil, errors.New("keel webhook: Config.URL is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 16
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Timeout}
	}
	return &Publisher{cfg: cfg}, nil
}

// StatusError is the failure for a non-2xx response.
type StatusError struct {
	Status int
	Body   string // at most 512 bytes of the response
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("keel webhook: status %d: %s", e.Status, e.Body)
}

// Publish implements outbox.Publisher: one POST per message, up to
// Concurrency at once (a batch never holds two messages of one key).
func (p *Publisher) Publish(ctx context.Context, batch []outbox.Delivery) []error {
	errs := make([]error, len(batch))
	sem := make(chan struct{}, p.cfg.Concurrency)
	var wg sync.WaitGroup
	for i := range batch {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			errs[i] = p.send(ctx, batch[i])
		}()
	}
	wg.Wait()
	return errs
}

func (p *Publisher) send(ctx context.Context, d outbox.Delivery) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.cfg.URL(d), bytes.NewReader(d.Payload))
	if err != nil {
		return fmt.Errorf("keel webhook: %w", err)
	}
	for k, v := range d.Headers {
		req.Header.Set(k, v)
	}
	if req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	req.Header.Set("Keel-Message-Id", d.ID.String())
	req.Header.Set("Keel-Topic", d.Topic)
	if d.Key != "" {
		req.Header.Set("Keel-Key", d.Key)
	}
	if d.Type != "" {
		req.Header.Set("Keel-Type", d.Type)
	}
	req.Header.Set("Keel-Attempt", strconv.Itoa(d.Attempt))
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	req.Header.Set("Keel-Timestamp", ts)
	if len(p.cfg.Secret) > 0 {
		req.Header.Set("Keel-Signature", Sign(p.cfg.Secret, ts, d.Payload))
	}
	resp, err := p.cfg.Client.Do(req)
	if err != nil {
		return fmt.Errorf("keel webhook: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &StatusError{Status: resp.StatusCode, Body: string(body)}
	}
	return nil
}

// Sign returns the Keel-Signature value for a timestamp and body.
func Sign(secret []byte, timestamp string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether a request's Keel-Signature matches its
// Keel-Timestamp and body under secret.
func Verify(secret []byte, header http.Header, body []byte) bool {
	want := Sign(secret, header.Get("Keel-Timestamp"), body)
	return hmac.Equal([]byte(want), []byte(header.Get("Keel-Signature")))
}
