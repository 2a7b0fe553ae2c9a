package console

import (
	"fmt"
	"html"
	"html/template"
	"strings"
	"time"
)

// Chart is a series of per-minute values drawn as an SVG in the page (no
// script, no library): stacked bars, or lines when Lines is set.
type Chart struct {
	Title   string      `json:"title"`
	Minutes []time.Time `json:"minutes"`
	Series  []Series    `json:"series"`
	Lines   bool        `json:"lines,omitempty"`
}

// Series is one named value per minute of a Chart.
type Series struct {
	Name   string  `json:"name"`
	Color  string  `json:"-"`
	Values []int64 `json:"values"`
}

const (
	chartW, chartH       = 320, 124
	chartLeft, chartBase = 30, 106
)

// chart draws c. Every number is computed here and every text escaped, so
// the markup is safe to include as it is.
func chart(c Chart) template.HTML {
	var b strings.Builder
	top := int64(1)
	n := len(c.Minutes)
	for i := 0; i < n; i++ {
		var sum int64
		for _, s := range c.Series {
			if i < len(s.Values) {
				if c.Lines {
					top = max(top, s.Values[i])
				} else {
					sum += s.Values[i]
				}
			}
		}
		top = max(top, sum)
	}
	fmt.Fprintf(&b, `<svg viewBox="0 0 %d %d" role="img" aria-label="%s">`, chartW, chartH, html.EscapeString(c.Title))
	plotW := float64(chartW - chartLeft - 6)
	plotH := float64(chartBase - 10)
	for _, f := range []float64{0, .5, 1} {
		y := float64(chartBase) - f*plotH
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e3e7ec"/>`, chartLeft, chartW-6, y, y)
		fmt.Fprintf(&b, `<text x="%d" y="%.1f" font-size="10" text-anchor="end" fill="#5c6670">%d</text>`, chartLeft-4, y+3, int64(f*float64(top)))
	}
	if n > 0 {
		slot := plotW / float64(n)
		for i, anchor := range map[int]string{0: "start", n / 2: "middle", n - 1: "end"} {
			x := float64(chartLeft) + slot*(float64(i)+.5)
			switch anchor {
			case "start":
				x = float64(chartLeft)
			case "end":
				x = float64(chartW - 6)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" font-size="10" text-anchor="%s" fill="#5c6670">%s</text>`,
				x, chartH-4, anchor, c.Minutes[i].UTC().Format("15:04"))
		}
		if c.Lines {
			for _, s := range c.Series {
				pts := make([]string, 0, n)
				for i := 0; i < n && i < len(s.Values); i++ {
					x := float64(chartLeft) + slot*(float64(i)+.5)
					y := float64(chartBase) - float64(s.Values[i])/float64(top)*plotH
					pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
				}
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>`,
					html.EscapeString(s.Color), strings.Join(pts, " "), html.EscapeString(s.Name))
			}
		} else {
			for i := 0; i < n; i++ {
				y := float64(chartBase)
				for _, s := range c.Series {
					if i >= len(s.Values) || s.Values[i] == 0 {
						continue
					}
					h := float64(s.Values[i]) / float64(top) * plotH
					y -= h
					fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s %s: %d</title></rect>`,
						float64(chartLeft)+slot*float64(i)+1, y, max(slot-2, 1), h, html.EscapeString(s.Color),
						c.Minutes[i].UTC().Format("15:04"), html.EscapeString(s.Name), s.Values[i])
				}
			}
		}
	}
	b.WriteString(`</svg><div class="legend">`)
	for _, s := range c.Series {
		fmt.Fprintf(&b, `<span><svg width="10" height="10"><rect width="10" height="10" fill="%s"/></svg> %s</span>`,
			html.EscapeString(s.Color), html.EscapeString(s.Name))
	}
	b.WriteString(`</div>`)
	// Built above from numbers and escaped text only.
	return template.HTML(b.String())
}
