package backfill

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress shows how a publish run goes: a bar with rate and ETA on a terminal, a plain line
// now and then elsewhere (a log file, CI), where a redrawn bar would be noise.
type progress interface {
	interval() time.Duration
	show(snapshot)
	clear() // before a report line is printed
	done(snapshot)
}

// newProgress picks the display for w; size is the input's, -1 when unknown.
func newProgress(w io.Writer, size int64, validating bool) progress {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return newProgressBar(f, size)
	}
	return &progressLines{w: w, size: size, validating: validating}
}

// progressBar measures the file's bytes, the only total known before the end, so the ETA
// holds for any line length; a stream of unknown size gets a spinner.
type progressBar struct {
	mu  sync.Mutex // the bar's Clear is not safe alongside its updates
	bar *progressbar.ProgressBar
}

func newProgressBar(w io.Writer, size int64) *progressBar {
	return &progressBar{bar: progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("publishing"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionFullWidth(),
		progressbar.OptionClearOnFinish(),
	)}
}

func (b *progressBar) interval() time.Duration { return 200 * time.Millisecond }

func (b *progressBar) show(s snapshot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bar.Describe(fmt.Sprintf("%d lines, %.0f lines/s", s.lines, s.rate()))
	_ = b.bar.Set64(s.bytes)
}

func (b *progressBar) clear() {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.bar.Clear()
}

func (b *progressBar) done(snapshot) {
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = b.bar.Finish()
}

// progressLines prints a line every few seconds.
type progressLines struct {
	w          io.Writer
	size       int64
	validating bool
}

func (p *progressLines) interval() time.Duration { return 5 * time.Second }

func (p *progressLines) show(s snapshot) {
	where := ""
	if p.size > 0 && s.bytes > 0 {
		left := time.Duration(float64(s.elapsed) * float64(p.size-s.bytes) / float64(s.bytes))
		where = fmt.Sprintf(" (%.0f%%, about %s left)", 100*float64(s.bytes)/float64(p.size), left.Round(time.Second))
	}
	counts := fmt.Sprintf("%d published, %d duplicates, %d invalid", s.published, s.duplicates, s.invalid)
	if p.validating {
		counts = fmt.Sprintf("%d valid, %d invalid", s.ok, s.invalid)
	}
	fmt.Fprintf(p.w, "progress: %d lines%s, %.0f lines/s: %s\n", s.lines, where, s.rate(), counts)
}

func (p *progressLines) clear() {}

func (p *progressLines) done(snapshot) {}
