package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// plot writes the run's charts into dir: latency percentiles against
// request rate (from -rates), and memory and descriptors over time for a
// soak.
func (r *run) plot(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if len(r.Sweep) > 0 {
		if err := r.plotSweep(filepath.Join(dir, "latency-vs-rate.png")); err != nil {
			return err
		}
	}
	if len(r.Soak) > 0 {
		if err := r.plotSoak(filepath.Join(dir, "soak.png")); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) plotSweep(path string) error {
	sweep := append([]*Result(nil), r.Sweep...)
	sort.Slice(sweep, func(i, j int) bool { return sweep[i].Rate < sweep[j].Rate })
	p := plot.New()
	p.Title.Text = "crud GET one by id: latency against request rate"
	p.X.Label.Text = "requests per second (offered)"
	p.Y.Label.Text = "latency (ms)"
	series := map[string]func(*Result) float64{
		"p50":   func(r *Result) float64 { return r.P50 },
		"p90":   func(r *Result) float64 { return r.P90 },
		"p99":   func(r *Result) float64 { return r.P99 },
		"p99.9": func(r *Result) float64 { return r.P999 },
	}
	var args []any
	for _, name := range []string{"p50", "p90", "p99", "p99.9"} {
		pts := make(plotter.XYs, len(sweep))
		for i, res := range sweep {
			pts[i].X, pts[i].Y = float64(res.Rate), series[name](res)
		}
		args = append(args, name, pts)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return err
	}
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}

func (r *run) plotSoak(path string) error {
	mem, fds := plot.New(), plot.New()
	mem.Title.Text = "soak: server resident memory"
	mem.X.Label.Text, mem.Y.Label.Text = "seconds", "MiB"
	fds.Title.Text = "soak: server open descriptors and WAL size"
	fds.X.Label.Text, fds.Y.Label.Text = "seconds", "descriptors / WAL MiB"
	rss := make(plotter.XYs, len(r.Soak))
	lite := make(plotter.XYs, len(r.Soak))
	goHeap := make(plotter.XYs, len(r.Soak))
	fd := make(plotter.XYs, len(r.Soak))
	wal := make(plotter.XYs, len(r.Soak))
	for i, s := range r.Soak {
		rss[i].X, rss[i].Y = s.At, s.RSSMiB
		lite[i].X, lite[i].Y = s.At, s.SQLiteMiB
		goHeap[i].X, goHeap[i].Y = s.At, s.GoHeapMiB
		fd[i].X, fd[i].Y = s.At, float64(s.FDs)
		wal[i].X, wal[i].Y = s.At, float64(s.WALBytes)/(1<<20)
	}
	if err := plotutil.AddLinePoints(mem, "RSS", rss, "SQLite heap", lite, "Go heap", goHeap); err != nil {
		return err
	}
	if err := plotutil.AddLinePoints(fds, "descriptors", fd, "WAL MiB", wal); err != nil {
		return err
	}
	// From zero, so that a flat line looks flat, with room above the
	// highest line for the legend.
	for _, p := range []*plot.Plot{mem, fds} {
		p.Y.Min, p.Y.Max = 0, p.Y.Max*1.3
		p.Legend.Top, p.Legend.Left = true, true
	}
	for name, p := range map[string]*plot.Plot{"soak-memory.png": mem, "soak-descriptors.png": fds} {
		if err := p.Save(8*vg.Inch, 4*vg.Inch, filepath.Join(filepath.Dir(path), name)); err != nil {
			return fmt.Errorf("save %s: %w", name, err)
		}
	}
	return nil
}
