package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/keelpg/keel/events"
	"github.com/keelpg/keel/internal/db"
	"github.com/keelpg/keel/jobs"
	"github.com/keelpg/keel/outbox"
	"github.com/keelpg/keel/saga"
)

// Config configures a console. The zero value serves every page and action
// at the root, with no authentication: bind it to a loopback address, or
// set BasicAuth or BearerToken.
type Config struct {
	// Prefix is the path the handler is mounted under, such as "/keel",
	// without a trailing slash. Its links and redirects start with it; the
	// handler strips it from the requests it serves, so mount it with
	// mux.Handle(prefix+"/", h). Default: "" (the root).
	Prefix string

	// ReadOnly refuses every action with 403 Forbidden and leaves their
	// buttons out of the pages. Default: false.
	ReadOnly bool

	// BasicAuth, when set, lets in a request that gives this user and
	// password with HTTP basic authentication. Default: nil.
	BasicAuth *BasicAuth

	// BearerToken, when not empty, lets in a request whose Authorization
	// header is "Bearer " and this token. A request so authenticated needs
	// no CSRF token: a browser never adds the header by itself. When
	// BasicAuth is set too, either lets a request in. Default: "".
	BearerToken string

	// RefreshInterval is how often an open page reloads its data without a
	// reload of the page. Default: 2s.
	RefreshInterval time.Duration

	// Logger receives one line per request that fails on the server's side
	// (a database error). Default: slog.Default().
	Logger *slog.Logger
}

// BasicAuth is a user and password for HTTP basic authentication.
type BasicAuth struct {
	User     string
	Password string
}

// defaultRefresh is Config.RefreshInterval's default.
const defaultRefresh = 2 * time.Second

// Handler serves the console. Make one with New; it is safe for concurrent
// use, starts no goroutine and holds no connection of its own beyond the
// pool's.
type Handler struct {
	cfg     Config
	pool    *pgxpool.Pool
	q       *db.Queries
	jobs    *jobs.Client
	saga    *saga.Engine
	events  *events.Store
	log     *slog.Logger
	pages   map[string]*template.Template
	handler http.Handler
	charts  chartCache
}

// New returns a console over pool. Its actions go through the same public
// API as keel's CLI: a jobs client that works no job, a saga engine that
// executes no run and an event store that runs no subscription.
func New(pool *pgxpool.Pool, cfg Config) (*Handler, error) {
	if pool == nil {
		return nil, errors.New("keel console: nil pool")
	}
	if cfg.Prefix != "" && (!strings.HasPrefix(cfg.Prefix, "/") || strings.HasSuffix(cfg.Prefix, "/")) {
		return nil, fmt.Errorf("keel console: Prefix %q must start with / and not end with one", cfg.Prefix)
	}
	if cfg.BasicAuth != nil && (cfg.BasicAuth.User == "" || cfg.BasicAuth.Password == "") {
		return nil, errors.New("keel console: BasicAuth needs a user and a password")
	}
	if cfg.RefreshInterval < 0 {
		return nil, fmt.Errorf("keel console: RefreshInterval %v is negative", cfg.RefreshInterval)
	}
	if cfg.RefreshInterval == 0 {
		cfg.RefreshInterval = defaultRefresh
	}
	h := &Handler{cfg: cfg, pool: pool, q: db.New(pool), log: cfg.Logger}
	if h.log == nil {
		h.log = slog.Default()
	}
	var err error
	if h.saga, err = saga.NewEngine(pool, saga.NewRegistry(), saga.Config{Logger: h.log, Jobs: jobs.Config{Logger: h.log}}); err != nil {
		return nil, fmt.Errorf("keel console: %w", err)
	}
	h.jobs = h.saga.Jobs()
	if h.events, err = events.NewStore(pool, events.Config{Logger: h.log}); err != nil {
		return nil, fmt.Errorf("keel console: %w", err)
	}
	if h.pages, err = parsePages(); err != nil {
		return nil, fmt.Errorf("keel console: %w", err)
	}
	mux := http.NewServeMux()
	static, _ := fs.Sub(assets, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", staticFiles(static)))
	h.routes(mux)
	h.handler = http.NewCrossOriginProtection().Handler(h.authenticate(mux))
	return h, nil
}

// ServeHTTP serves a page, a JSON endpoint, an action or an asset.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Prefix != "" {
		// The prefix is cut from the escaped path, so that an id holding
		// an escaped slash (a child run's parent/3) stays one segment.
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), h.cfg.Prefix)
		if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
			http.NotFound(w, r)
			return
		}
		if rest == "" {
			rest = "/"
		}
		path, err := url.PathUnescape(rest)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = path, rest
		r = r2
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	h.handler.ServeHTTP(w, r)
}

// routes registers every page and action. A page is served twice: as HTML
// at its path and as JSON at /api and its path; so is an action.
func (h *Handler) routes(mux *http.ServeMux) {
	h.page(mux, "/{$}", "overview", h.overview)
	h.page(mux, "/queues", "queues", h.queueList)
	h.action(mux, "/queues/{name}/pause", confirm("Pause this queue? Its workers stop taking its jobs."), h.queuePause)
	h.action(mux, "/queues/{name}/resume", nil, h.queueResume)
	h.jobRoutes(mux)
	h.sagaRoutes(mux)
	h.outboxRoutes(mux)
	h.eventRoutes(mux)
}

// A loader reads what one page shows. Its value is the JSON endpoint's body
// and the page template's .V.
type loader func(r *http.Request) (any, error)

// A doer runs one action. It returns what the JSON endpoint answers and the
// path (below Prefix) that the form's 303 redirect goes to.
type doer func(r *http.Request) (result any, next string, err error)

// page serves load's value as the HTML page tmpl at pattern and as JSON at
// /api and pattern.
func (h *Handler) page(mux *http.ServeMux, pattern, tmpl string, load loader) {
	if _, ok := h.pages[tmpl]; !ok {
		panic("keel console: no template " + tmpl)
	}
	mux.HandleFunc("GET "+pattern, func(w http.ResponseWriter, r *http.Request) {
		v, err := load(r)
		if err != nil {
			h.fail(w, r, false, err)
			return
		}
		h.render(w, r, http.StatusOK, tmpl, v)
	})
	mux.HandleFunc("GET /api"+strings.TrimSuffix(pattern, "{$}"), func(w http.ResponseWriter, r *http.Request) {
		v, err := load(r)
		if err != nil {
			h.fail(w, r, true, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
	})
}

// confirmation is what the person is asked before a destructive action.
type confirmation struct{ Question string }

// confirm marks an action destructive: a form must carry confirm=yes, which
// the page's script adds once the person agrees to question. A form posted
// without it (no script) gets a page that asks.
func confirm(question string) *confirmation { return &confirmation{question} }

// action serves do at POST pattern for forms (a 303 redirect to what do
// returns) and at POST /api and pattern for programs (JSON). Every action
// is refused in read-only mode and needs the CSRF token, unless the request
// carries the bearer token.
func (h *Handler) action(mux *http.ServeMux, pattern string, ask *confirmation, do doer) {
	serve := func(api bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if h.cfg.ReadOnly {
				h.fail(w, r, api, errorf(http.StatusForbidden, "the console is read-only"))
				return
			}
			if err := r.ParseForm(); err != nil {
				h.fail(w, r, api, errorf(http.StatusBadRequest, "unreadable form: %v", err))
				return
			}
			if !h.csrfOK(r) {
				h.fail(w, r, api, errorf(http.StatusForbidden, "missing or wrong CSRF token; reload the page and try again"))
				return
			}
			if ask != nil && !api && r.PostForm.Get("confirm") != "yes" {
				h.render(w, r, http.StatusOK, "confirm", confirmView{Question: ask.Question, Action: h.cfg.Prefix + r.URL.EscapedPath(), Fields: r.PostForm})
				return
			}
			res, next, err := do(r)
			if err != nil {
				h.fail(w, r, api, err)
				return
			}
			if api {
				writeJSON(w, http.StatusOK, res)
				return
			}
			http.Redirect(w, r, h.cfg.Prefix+next, http.StatusSeeOther)
		}
	}
	mux.HandleFunc("POST "+pattern, serve(false))
	mux.HandleFunc("POST /api"+pattern, serve(true))
}

// confirmView is the page that asks before a destructive action posted
// without confirm=yes.
type confirmView struct {
	Question string
	Action   string
	Fields   map[string][]string
}

// httpError is an error with the status it answers.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status, fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its HTTP status: an *httpError says; keel's
// not-found sentinels are 404; anything else is the server's fault.
func statusOf(err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.status
	case errors.Is(err, jobs.ErrNotFound), errors.Is(err, saga.ErrRunNotFound), errors.Is(err, events.ErrSubscriptionNotFound),
		errors.Is(err, events.ErrStreamNotFound), errors.Is(err, outbox.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, jobs.ErrInvalidOptions), errors.Is(err, saga.ErrInvalidOptions), errors.Is(err, saga.ErrEncode),
		errors.Is(err, events.ErrInvalidArgument), errors.Is(err, outbox.ErrInvalidArgument):
		return http.StatusBadRequest
	case errors.Is(err, events.ErrStreamDeleted):
		return http.StatusGone
	case errors.Is(err, saga.ErrRunFinished), errors.Is(err, saga.ErrRunNotFinished), errors.Is(err, outbox.ErrNotDead),
		errors.Is(err, jobs.ErrDuplicate), errors.Is(err, jobs.ErrJobRunning), errors.Is(err, jobs.ErrJobHasDependents):
		return http.StatusConflict
	case errors.Is(err, context.Canceled):
		return 499
	}
	return http.StatusInternalServerError
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, api bool, err error) {
	status := statusOf(err)
	msg := err.Error()
	if status >= 500 {
		h.log.ErrorContext(r.Context(), "keel console: request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	if api {
		writeJSON(w, status, map[string]string{"error": msg})
		return
	}
	h.render(w, r, status, "error", errorView{Status: status, Message: msg})
}

type errorView struct {
	Status  int
	Message string
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
