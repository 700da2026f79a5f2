package logging

import (
	"bufio"
	"io"
	"sync"
	"time"
)

// Buffered is a writer for log lines that writes them to the underlying
// writer in batches: a line waits at most the flush interval, or until
// 64 KiB are pending. One write(2) per access-log line costs about as
// much as formatting it; batching takes that off every request. Lines
// still pending when the process is killed are lost: logs are not the
// record (the event log is), and Close flushes on every orderly exit.
type Buffered struct {
	mu   sync.Mutex
	bw   *bufio.Writer
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewBuffered returns a Buffered over w flushing every interval.
func NewBuffered(w io.Writer, interval time.Duration) *Buffered {
	b := &Buffered{bw: bufio.NewWriterSize(w, 64<<10), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flushEvery(interval)
	return b
}

func (b *Buffered) flushEvery(interval time.Duration) {
	defer close(b.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = b.Flush()
		case <-b.stop:
			return
		}
	}
}

// Write buffers p, one whole log line (handlers write a line at a time).
func (b *Buffered) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.bw.Write(p)
}

// Flush writes what is pending.
func (b *Buffered) Flush() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.bw.Buffered() == 0 {
		return nil
	}
	return b.bw.Flush()
}

// Close stops the periodic flush and writes what is pending; later writes
// are still buffered, and written by the next Flush.
func (b *Buffered) Close() error {
	b.once.Do(func() { close(b.stop); <-b.done })
	return b.Flush()
}
