package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// writeChart draws one horizontal bar per compared row: the ratio on a
// logarithmic axis, with the 1× line marked, green where keel is ahead.
func writeChart(path string, rows []row) error {
	var bars []row
	maxRatio, minRatio := 1.0, 1.0
	for _, r := range rows {
		if r.ratio > 0 {
			bars = append(bars, r)
			maxRatio, minRatio = math.Max(maxRatio, r.ratio), math.Min(minRatio, r.ratio)
		}
	}
	const (
		labelW = 470
		barW   = 420
		rowH   = 22
		top    = 30
		pad    = 10
	)
	width, height := labelW+barW+2*pad+60, top+rowH*max(len(bars), 1)+pad
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	text := func(x, y int, s string) {
		d := font.Drawer{Dst: img, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	text(pad, 18, "keel vs peer: how many times better (log scale; the line is 1x)")
	lo, hi := math.Log(math.Min(minRatio, 0.5)), math.Log(math.Max(maxRatio, 2))
	xOf := func(ratio float64) int {
		return labelW + pad + int(float64(barW)*(math.Log(ratio)-lo)/(hi-lo))
	}
	one := xOf(1)
	for i, b := range bars {
		y := top + i*rowH
		label := strings.Join(strings.Fields(b.family+" "+b.scenario+" "+b.unit+" vs "+b.peer), " ")
		if len(label) > 66 {
			label = label[:66]
		}
		text(pad, y+15, label)
		x := xOf(b.ratio)
		c := color.RGBA{60, 160, 80, 255}
		if b.ratio < 1 {
			c = color.RGBA{200, 80, 60, 255}
		}
		r := image.Rect(min(x, one), y+4, max(x, one)+1, y+rowH-4)
		draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
		text(max(x, one)+4, y+15, fmt.Sprintf("%.2fx", b.ratio))
	}
	draw.Draw(img, image.Rect(one, top, one+1, height-pad), image.NewUniform(color.Black), image.Point{}, draw.Src)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
