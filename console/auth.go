package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
)

// authenticate lets a request through when the console needs no
// authentication or the request gives the basic-auth user and password or
// the bearer token. Anything else is 401, with a basic-auth challenge when
// basic auth is configured so that a browser asks for it.
func (h *Handler) authenticate(next http.Handler) http.Handler {
	if h.cfg.BasicAuth == nil && h.cfg.BearerToken == "" {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h.bearer(r) || h.basic(r) {
			next.ServeHTTP(w, r)
			return
		}
		if h.cfg.BasicAuth != nil {
			w.Header().Set("WWW-Authenticate", `Basic realm="keel console", charset="UTF-8"`)
		} else {
			w.Header().Set("WWW-Authenticate", `Bearer realm="keel console"`)
		}
		h.fail(w, r, strings.HasPrefix(r.URL.Path, "/api/"), errorf(http.StatusUnauthorized, "authentication required"))
	})
}

// bearer reports whether r carries the configured bearer token.
func (h *Handler) bearer(r *http.Request) bool {
	if h.cfg.BearerToken == "" {
		return false
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && equal(token, h.cfg.BearerToken)
}

func (h *Handler) basic(r *http.Request) bool {
	if h.cfg.BasicAuth == nil {
		return false
	}
	user, password, ok := r.BasicAuth()
	// Both comparisons run, so the time taken tells nothing of which failed.
	userOK, passwordOK := equal(user, h.cfg.BasicAuth.User), equal(password, h.cfg.BasicAuth.Password)
	return ok && userOK && passwordOK
}

func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// csrfCookie holds the browser's CSRF token. Every form carries the same
// token in its csrf field (a script's request in the X-Keel-CSRF header),
// and an action runs only when the two match: a page of another site can
// make the browser send the cookie but cannot read it to fill the field.
// The cookie is SameSite=Strict and HttpOnly, and the handler also refuses
// cross-origin requests by their Sec-Fetch-Site and Origin headers
// (net/http's CrossOriginProtection).
const csrfCookie = "keel_csrf"

// csrfToken returns the request's CSRF token, setting a new cookie when it
// has none.
func (h *Handler) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	token := base64.RawURLEncoding.EncodeToString(b[:])
	p := h.cfg.Prefix
	if p == "" {
		p = "/"
	}
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: token, Path: p, HttpOnly: true, Secure: r.TLS != nil,
		SameSite: http.SameSiteStrictMode})
	return token
}

// csrfOK reports whether an action may run: it carries the bearer token, or
// its csrf field or X-Keel-CSRF header matches its cookie.
func (h *Handler) csrfOK(r *http.Request) bool {
	if h.bearer(r) {
		return true
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || c.Value == "" {
		return false
	}
	sent := r.PostForm.Get("csrf")
	if sent == "" {
		sent = r.Header.Get("X-Keel-CSRF")
	}
	return sent != "" && equal(sent, c.Value)
}
