package console

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/internal/testdb"
)

func TestMain(m *testing.M) { testdb.Main(m) }

// browser is a test's user of one console: a server over its own database
// and a client that keeps cookies, as a browser does.
type browser struct {
	t      testing.TB
	srv    *httptest.Server
	client *http.Client
	prefix string
}

// open serves a console over pool with cfg for the test.
func open(t testing.TB, pool *pgxpool.Pool, cfg Config) *browser {
	t.Helper()
	h, err := New(pool, cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	if cfg.Prefix == "" {
		mux.Handle("/", h)
	} else {
		mux.Handle(cfg.Prefix+"/", h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, srv: srv, client: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, prefix: cfg.Prefix}
}

// do sends a request with extra headers and returns the status, headers and
// body.
func (b *browser) do(method, path string, body io.Reader, header http.Header) (int, http.Header, string) {
	b.t.Helper()
	req, err := http.NewRequest(method, b.srv.URL+b.prefix+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	if err != nil {
		b.t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(out)
}

// page GETs an HTML page and fails the test unless it answers 200.
func (b *browser) page(path string) string {
	b.t.Helper()
	status, _, body := b.do(http.MethodGet, path, nil, nil)
	if status != http.StatusOK {
		b.t.Fatalf("GET %s: %d %s", path, status, body)
	}
	return body
}

// json GETs /api and path into v and returns the status.
func (b *browser) json(path string, v any) int {
	b.t.Helper()
	status, _, body := b.do(http.MethodGet, "/api"+path, nil, nil)
	if status == http.StatusOK && v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			b.t.Fatalf("GET /api%s: %v in %s", path, err, body)
		}
	}
	return status
}

// csrf is the token of the browser's cookie, which a page GET sets.
func (b *browser) csrf() string {
	b.t.Helper()
	u, _ := url.Parse(b.srv.URL + b.prefix + "/")
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == csrfCookie {
			return c.Value
		}
	}
	b.page("/")
	return b.csrf()
}

// submit posts a form as a page would: with the CSRF token and, for a
// destructive action, the confirmation its script adds.
func (b *browser) submit(path string, form url.Values) (int, http.Header, string) {
	b.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", b.csrf())
	form.Set("confirm", "yes")
	return b.do(http.MethodPost, path, strings.NewReader(form.Encode()), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
}

// call posts to /api and path as a script would, with the X-Keel-CSRF
// header, and decodes the JSON answer into v.
func (b *browser) call(path string, form url.Values, v any) int {
	b.t.Helper()
	status, _, body := b.do(http.MethodPost, "/api"+path, strings.NewReader(form.Encode()),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "X-Keel-Csrf": {b.csrf()}})
	if status == http.StatusOK && v != nil {
		if err := json.Unmarshal([]byte(body), v); err != nil {
			b.t.Fatalf("POST /api%s: %v in %s", path, err, body)
		}
	}
	return status
}
