package console

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"time"
)

// assets are the console's templates, script and style sheet, built into
// the binary.
//
//go:embed templates static
var assets embed.FS

// view is what every template is given: the page's own value and what the
// layout needs.
type view struct {
	V        any
	Page     string // the template's name, which the nav marks
	Prefix   string
	CSRF     string
	ReadOnly bool
	Refresh  int // milliseconds between live updates
}

// funcs are the helpers every template may call.
var funcs = template.FuncMap{
	"ago":       ago,
	"when":      when,
	"dur":       dur,
	"json":      prettyJSON,
	"query":     query,
	"add":       func(a, b int) int { return a + b },
	"pct":       func(n, total int64) float64 { return percent(n, total) },
	"firstLine": firstLine,
	"chart":     chart,
	"pathEsc":   url.PathEscape,
}

// parsePages parses the layout and the parts pages share once per page, so
// that every page may define the blocks the layout calls ("title", "main").
func parsePages() (map[string]*template.Template, error) {
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/parts/*.html")
	if err != nil {
		return nil, err
	}
	files, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, f := range files {
		name := strings.TrimSuffix(path.Base(f), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(assets, f)
		if err != nil {
			return nil, err
		}
		pages[name] = t
	}
	return pages, nil
}

// render writes page tmpl with v. A live update (the page's script asks
// with the X-Keel-Refresh header) gets the "main" block alone.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, status int, tmpl string, v any) {
	t := h.pages[tmpl]
	data := view{V: v, Page: tmpl, Prefix: h.cfg.Prefix, CSRF: h.csrfToken(w, r), ReadOnly: h.cfg.ReadOnly,
		Refresh: int(h.cfg.RefreshInterval / time.Millisecond)}
	name := "layout.html"
	if r.Header.Get("X-Keel-Refresh") != "" {
		name = "main"
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, name, data); err != nil {
		h.log.ErrorContext(r.Context(), "keel console: template failed", "template", tmpl, "error", err)
		http.Error(w, "keel console: the page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// staticFiles serves the embedded assets, cached for an hour.
func staticFiles(root fs.FS) http.Handler {
	files := http.FileServerFS(root)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		files.ServeHTTP(w, r)
	})
}

// ago is how long before now t was, for a person: "3s ago", "2h ago".
func ago(t any) string {
	tm, ok := asTime(t)
	if !ok {
		return "-"
	}
	d := time.Since(tm)
	if d < 0 {
		return "in " + roundDur(-d)
	}
	return roundDur(d) + " ago"
}

// when is t in UTC to the millisecond, or "-" for none.
func when(t any) string {
	tm, ok := asTime(t)
	if !ok {
		return "-"
	}
	return tm.UTC().Format("2006-01-02 15:04:05.000")
}

func asTime(t any) (time.Time, bool) {
	switch v := t.(type) {
	case time.Time:
		return v, !v.IsZero()
	case *time.Time:
		if v == nil {
			return time.Time{}, false
		}
		return *v, !v.IsZero()
	}
	return time.Time{}, false
}

// dur shows a duration (or a number of seconds) rounded for a person.
func dur(d any) string {
	switch v := d.(type) {
	case time.Duration:
		return roundDur(v)
	case float64:
		if v <= 0 {
			return "-"
		}
		return roundDur(time.Duration(v * float64(time.Second)))
	}
	return fmt.Sprint(d)
}

func roundDur(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

// prettyJSON indents a JSON document for a <pre>; what is not JSON is shown
// as it is.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

// query builds a query string from pairs of names and values, leaving out
// empty values: {{query "state" .State "queue" .Queue}}.
func query(pairs ...any) template.URL {
	v := url.Values{}
	for i := 0; i+1 < len(pairs); i += 2 {
		if s := fmt.Sprint(pairs[i+1]); s != "" && s != "0" {
			v.Set(fmt.Sprint(pairs[i]), s)
		}
	}
	if len(v) == 0 {
		return ""
	}
	return template.URL("?" + v.Encode())
}

func percent(n, total int64) float64 {
	if total <= 0 {
		return 0
	}
	return float64(n) * 100 / float64(total)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
