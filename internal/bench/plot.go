package bench

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
)

// plotSeries is one panel of the plot: a value per sample, over time.
type plotSeries struct {
	title, color string
	values       []float64
	// ref, when above 0, is drawn as a dashed line (the tenant's budget).
	ref float64
}

const (
	plotWidth  = 900
	panelH     = 170
	plotLeft   = 70
	plotRight  = 20
	plotTop    = 40
	panelGap   = 40
	axisBottom = 30
)

// Plot draws the run over time as hand-written SVG: events/s, 429s per second and the
// worker's current rate limit (not in the tenants scenario), one panel each, sharing the time axis.
func (f *Report) Plot() []byte {
	sc, samples := f.sc, f.samples
	n := len(samples)
	t := make([]float64, n)
	events, throttled, limit := make([]float64, n), make([]float64, n), make([]float64, n)
	for i, s := range samples {
		t[i] = s.at.Seconds()
		limit[i] = s.limit
		if i == 0 {
			continue
		}
		dt := (s.at - samples[i-1].at).Seconds()
		if dt <= 0 {
			continue
		}
		events[i] = float64(s.outcomes-samples[i-1].outcomes) / dt
		throttled[i] = float64(s.throttled-samples[i-1].throttled) / dt
	}
	budget := sc.tenantBudget()
	eventsTitle := "events/s (outcomes recorded)"
	if sc.publishCommand {
		eventsTitle = "events/s (published into the stream)"
	}
	panels := []plotSeries{
		{title: eventsTitle, color: "#1f77b4", values: events, ref: budget},
		{title: "Graph 429s per second", color: "#d62728", values: throttled},
	}
	if sc.tenants == 0 {
		// Not scraped in the tenants scenario: a /metrics of a thousand tenants each second
		// would be a load of its own on the worker measured.
		panels = append(panels, plotSeries{title: "worker's rate limit (hwstate_rate_limit, creates/s)", color: "#2ca02c", values: limit, ref: budget})
	}
	height := plotTop + len(panels)*(panelH+panelGap) + axisBottom
	tMax := 1.0
	if n > 0 {
		tMax = max(t[n-1], 1)
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n",
		plotWidth, height, plotWidth, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%d" y="22" font-size="15">hwstate bench --scenario %s: %s</text>`+"\n", plotLeft, html.EscapeString(sc.name), html.EscapeString(sc.summary))
	w := float64(plotWidth - plotLeft - plotRight)
	for p, s := range panels {
		top := float64(plotTop + p*(panelH+panelGap) + 16)
		h := float64(panelH - 16)
		yMax := niceCeil(max(maxOf(s.values), s.ref*1.1, 1))
		x := func(v float64) float64 { return plotLeft + v/tMax*w }
		y := func(v float64) float64 { return top + h - v/yMax*h }
		fmt.Fprintf(&b, `<text x="%d" y="%.0f" font-weight="bold">%s</text>`+"\n", plotLeft, top-6, html.EscapeString(s.title))
		fmt.Fprintf(&b, `<rect x="%d" y="%.1f" width="%.1f" height="%.1f" fill="none" stroke="#999"/>`+"\n", plotLeft, top, w, h)
		for _, frac := range []float64{0, 0.5, 1} {
			fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`+"\n", plotLeft-6, y(frac*yMax)+4, strconv.FormatFloat(frac*yMax, 'f', -1, 64))
			if frac == 0.5 {
				fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", plotLeft, plotLeft+w, y(frac*yMax), y(frac*yMax))
			}
		}
		if s.ref > 0 {
			fmt.Fprintf(&b, `<line x1="%d" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#555" stroke-dasharray="5,4"/>`+"\n", plotLeft, plotLeft+w, y(s.ref), y(s.ref))
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#555">tenant budget %g/s</text>`+"\n", plotLeft+w-4, y(s.ref)-4, s.ref)
		}
		var pts bytes.Buffer
		for i, v := range s.values {
			fmt.Fprintf(&pts, "%.1f,%.1f ", x(t[i]), y(v))
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", s.color, bytes.TrimSpace(pts.Bytes()))
	}
	axisY := plotTop + len(panels)*(panelH+panelGap) - panelGap + 18
	for i := 0; i <= 5; i++ {
		v := tMax * float64(i) / 5
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%.0f s</text>`+"\n", plotLeft+v/tMax*w, axisY, v)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func maxOf(vs []float64) float64 {
	m := 0.0
	for _, v := range vs {
		m = max(m, v)
	}
	return m
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten, for readable axis labels.
func niceCeil(v float64) float64 {
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}
