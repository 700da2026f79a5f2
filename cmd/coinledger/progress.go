package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// progressSample is what a long job (an export, an import, a rebuild) has
// done at one moment.
type progressSample struct {
	Events   uint64  // events done
	Position uint64  // the position reached (0: not known)
	Fraction float64 // the share done, in [0, 1] (0: not known)
	Rate     float64 // events/s as the job measures it (0: Events over the time since the start)
}

// progressOut is where progress shows and how: on a terminal one line with
// a bar redrawn in place, else a plain line now and then.
type progressOut struct {
	w     io.Writer
	tty   bool          // redraw one line in place, with a bar
	width int           // the terminal's columns (tty)
	every time.Duration // between two reports
}

// stderrProgress reports on standard error, with a bar when it is a
// terminal.
func stderrProgress() progressOut {
	fd := int(os.Stderr.Fd())
	if !term.IsTerminal(fd) {
		return progressOut{w: os.Stderr, every: 5 * time.Second}
	}
	width, _, err := term.GetSize(fd)
	if err != nil || width < 40 {
		width = 80
	}
	return progressOut{w: os.Stderr, tty: true, width: width, every: 200 * time.Millisecond}
}

// startProgress reports a job on standard error (see stderrProgress) until
// the returned stop is called: label names it ("exported", "rebuild
// wallet"), sample says how far it is (called from another goroutine).
func startProgress(label string, sample func() progressSample) (stop func()) {
	return stderrProgress().start(label, sample)
}

// start reports every o.every until stop (which may be called more than
// once); on a terminal, stop clears the line so the command's own summary
// follows on a clean one.
func (o progressOut) start(label string, sample func() progressSample) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		start := time.Now()
		t := time.NewTicker(o.every)
		defer t.Stop()
		printed := false
		for {
			select {
			case <-done:
				if printed && o.tty {
					fmt.Fprint(o.w, "\r\033[K")
				}
				return
			case <-t.C:
			}
			s := o.line(label, sample(), time.Since(start))
			if o.tty {
				fmt.Fprintf(o.w, "\r\033[K%s", s)
			} else {
				fmt.Fprintln(o.w, s)
			}
			printed = true
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

// line is one report of s, elapsed after the start.
func (o progressOut) line(label string, s progressSample, elapsed time.Duration) string {
	r := s.Rate
	if r == 0 && elapsed > 0 {
		r = float64(s.Events) / elapsed.Seconds()
	}
	f := min(max(s.Fraction, 0), 1)
	eta := ""
	if f > 0 && f < 1 {
		eta = time.Duration(float64(elapsed) * (1 - f) / f).Round(time.Second).String()
	}
	pos := ""
	if s.Position > 0 {
		pos = fmt.Sprintf(" (position %d)", s.Position)
	}
	if !o.tty {
		line := fmt.Sprintf("%s %d events%s, %.0f events/s", label, s.Events, pos, r)
		if f > 0 {
			line += fmt.Sprintf(", %.0f%%", 100*f)
		}
		if eta != "" {
			line += ", " + eta + " left"
		}
		return line
	}
	tail := fmt.Sprintf(" %d events, %.0f events/s", s.Events, r)
	if eta != "" {
		tail += ", ETA " + eta
	}
	if f == 0 {
		return clip(label+tail+pos, o.width-1)
	}
	// label [=====>    ] 42% tail
	pct := fmt.Sprintf(" %3.0f%%", 100*f)
	bar := o.width - 1 - len(label) - len(pct) - len(tail) - 3
	if bar < 10 {
		return clip(label+pct+tail, o.width-1)
	}
	filled := int(f * float64(bar))
	b := strings.Repeat("=", filled)
	if filled < bar {
		b += ">" + strings.Repeat(" ", bar-filled-1)
	}
	return label + " [" + b + "]" + pct + tail
}

// clip cuts s to n bytes (progress lines are ASCII).
func clip(s string, n int) string {
	if n > 0 && len(s) > n {
		return s[:n]
	}
	return s
}
