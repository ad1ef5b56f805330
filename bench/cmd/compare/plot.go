package main

import (
	"fmt"
	"image/color"
	"os"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	okColor     = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	failColor   = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	markerColor = color.RGBA{R: 90, G: 90, B: 90, A: 255}
)

// Panel size in the PNG.
const (
	panelWidth  = 5.5 * vg.Inch
	panelHeight = 2.4 * vg.Inch
)

// writeTimelines draws grid[row][col] (nil: an empty cell) as one PNG:
// per trial, successful responses per 10 ms, failures per 10 ms and the
// upgrade signals.
func writeTimelines(path string, grid [][]*trial) error {
	if len(grid) == 0 || len(grid[0]) == 0 {
		return fmt.Errorf("timeline %s: nothing to draw", path)
	}
	rows, cols := len(grid), len(grid[0])
	plots := make([][]*plot.Plot, rows)
	for r := range grid {
		plots[r] = make([]*plot.Plot, cols)
		for c, t := range grid[r] {
			plots[r][c] = panel(t)
		}
	}
	img := vgimg.NewWith(vgimg.UseWH(vg.Length(cols)*panelWidth, vg.Length(rows)*panelHeight), vgimg.UseDPI(96))
	dc := draw.New(img)
	// A white background: PNG viewers show transparency as black or checks.
	dc.SetColor(color.White)
	dc.Fill(dc.Rectangle.Path())
	tiles := draw.Tiles{Rows: rows, Cols: cols, PadTop: vg.Points(4), PadBottom: vg.Points(4),
		PadLeft: vg.Points(6), PadRight: vg.Points(10), PadX: vg.Points(10), PadY: vg.Points(10)}
	canvases := plot.Align(plots, tiles, dc)
	for r := range plots {
		for c := range plots[r] {
			plots[r][c].Draw(canvases[r][c])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// panel draws one trial.
func panel(t *trial) *plot.Plot {
	p := plot.New()
	p.Title.TextStyle.Font.Size = vg.Points(10)
	p.X.Label.Text = "seconds since the load started"
	p.Y.Label.Text = "responses per 10 ms"
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = vg.Points(8)
		a.Tick.Label.Font.Size = vg.Points(8)
	}
	if t == nil {
		p.Title.Text = "(not run)"
		return p
	}
	tl := &t.Timeline
	p.Title.Text = fmt.Sprintf("%s — %s, run %d: %d failed in %d upgrades", t.Mech.Name, t.Config.Name(), t.Run,
		t.Metrics.Failed, len(t.Metrics.Upgrades))
	if t.Err != nil {
		p.Title.Text += " (did not finish)"
	}
	x := func(i int) float64 { return (float64(i) + 0.5) * bucketWidth.Seconds() }

	ok := make(plotter.XYs, len(tl.OK))
	for i, n := range tl.OK {
		ok[i] = plotter.XY{X: x(i), Y: float64(n)}
	}
	top := float64(slices.Max(append([]int64{1}, tl.OK...)))
	// Failures share the axis; a burst taller than the best bucket of
	// successes is cut at the top of the panel (the title has the total).
	var fails plotter.XYs
	clipped := false
	for i := range tl.OK {
		if n := float64(tl.failedAt(i)); n > 0 {
			if n > top {
				n, clipped = top, true
			}
			fails = append(fails, plotter.XY{X: x(i), Y: n})
		}
	}
	// Head room above the data for the legend.
	p.Y.Min, p.Y.Max = 0, top*1.55
	p.X.Min, p.X.Max = 0, t.End.Seconds()

	var signals []float64
	for _, m := range t.Marks {
		signals = append(signals, m.Signal.Seconds())
	}
	marks := &vlines{xs: signals, style: draw.LineStyle{Color: markerColor, Width: vg.Points(0.8), Dashes: []vg.Length{vg.Points(3), vg.Points(2)}}}
	p.Add(marks)

	okLine, _ := plotter.NewLine(ok)
	okLine.Color, okLine.Width = okColor, vg.Points(0.7)
	p.Add(okLine)

	failLines := &impulses{xys: fails, style: draw.LineStyle{Color: failColor, Width: vg.Points(1.2)}}
	p.Add(failLines)

	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	p.Legend.ThumbnailWidth = vg.Points(14)
	p.Legend.Add("ok", okLine)
	label := "failed"
	if clipped {
		label += " (cut at the top)"
	}
	p.Legend.Add(label, failLines)
	label = "upgrade signal"
	if !t.Mech.HandOver {
		label = "SIGTERM (stop, then start)"
	}
	p.Legend.Add(label, marks)
	return p
}

// impulses draws a vertical line from 0 to Y at each X.
type impulses struct {
	xys   plotter.XYs
	style draw.LineStyle
}

func (im *impulses) Plot(c draw.Canvas, p *plot.Plot) {
	trX, trY := p.Transforms(&c)
	for _, xy := range im.xys {
		c.StrokeLine2(im.style, trX(xy.X), trY(0), trX(xy.X), trY(xy.Y))
	}
}

func (im *impulses) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(im.style, c.Min.X, y, c.Max.X, y)
}

// vlines draws a vertical line across the whole panel at each x.
type vlines struct {
	xs    []float64
	style draw.LineStyle
}

func (v *vlines) Plot(c draw.Canvas, p *plot.Plot) {
	trX, _ := p.Transforms(&c)
	for _, x := range v.xs {
		c.StrokeLine2(v.style, trX(x), c.Min.Y, trX(x), c.Max.Y)
	}
}

func (v *vlines) Thumbnail(c *draw.Canvas) {
	y := c.Center().Y
	c.StrokeLine2(v.style, c.Min.X, y, c.Max.X, y)
}
