package pipe_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coinledger/coinledger/adapters/walletnotify"
	"github.com/coinledger/coinledger/adapters/walletnotify/pipe"
)

func txidN(n int) string {
	const hex = "0123456789abcdef"
	b := []byte(strings.Repeat("c0ffee", 11)[:64])
	b[63] = hex[n%16]
	b[62] = hex[n/16%16]
	return string(b)
}

type run struct {
	got  chan walletnotify.Notification
	done chan error
	stop func() (error, time.Duration)
}

// start runs a source until the test ends.
func start(t *testing.T, cfg pipe.Config) *run {
	t.Helper()
	got := make(chan walletnotify.Notification, 100)
	sink := func(_ context.Context, n walletnotify.Notification) error {
		got <- n
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- pipe.New(cfg, sink).Run(ctx) }()
	r := &run{got: got, done: done}
	var stopped bool
	var err error
	var took time.Duration
	r.stop = func() (error, time.Duration) {
		if !stopped {
			stopped = true
			begin := time.Now()
			cancel()
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Run did not return within 5 s of cancel")
			}
			took = time.Since(begin)
		}
		return err, took
	}
	t.Cleanup(func() { r.stop() })
	return r
}

// waitReader waits until path is a FIFO that some process reads: opening it
// for writing without blocking fails (ENXIO) before that.
func waitReader(t *testing.T, r *run, path string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var f *os.File
		fi, err := os.Lstat(path)
		if err == nil && fi.Mode().Type() == fs.ModeNamedPipe {
			f, err = os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		}
		if err == nil && f != nil {
			f.Close()
			return
		}
		select {
		case err := <-r.done:
			t.Fatalf("Run returned %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reader on %s after 5 s: %v", path, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// write opens path, writes s and closes it, as `echo txid >> path` does.
func write(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func (r *run) expect(t *testing.T, want ...string) {
	t.Helper()
	for _, txid := range want {
		select {
		case n := <-r.got:
			if n.TxID != txid || n.Coin != "BTC" || n.Source != "pipe" {
				t.Fatalf("got %+v, want txid %s coin BTC source pipe", n, txid)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("txid %s not notified within 5 s", txid)
		}
	}
}

func (r *run) expectNothing(t *testing.T) {
	t.Helper()
	select {
	case n := <-r.got:
		t.Fatalf("unexpected notification %+v", n)
	case <-time.After(30 * time.Millisecond):
	}
}

func TestWritersInTurn(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "btc.pipe")
	r := start(t, pipe.Config{Path: path, Coin: "BTC"})
	waitReader(t, r, path)

	write(t, path, txidN(1)+"\n")
	r.expect(t, txidN(1))
	// Every writer closes; the next still gets through.
	write(t, path, strings.ToUpper(txidN(2))+"\r\n")
	write(t, path, "\n   \nnot-a-txid\n"+txidN(3)[:63]+"\n"+strings.Repeat("f", 5000)+"\n"+txidN(4)+"\n")
	write(t, path, " "+txidN(5)+" \n"+txidN(6)+"\n")
	r.expect(t, txidN(2), txidN(4), txidN(5), txidN(6))
	r.expectNothing(t)

	// Several writers open at once, each writing whole lines.
	var files []*os.File
	for range 3 {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	for i, f := range files {
		if _, err := f.WriteString(txidN(10+i) + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		f.Close()
	}
	r.expect(t, txidN(10), txidN(11), txidN(12))

	if err, took := r.stop(); err != nil || took > time.Second {
		t.Fatalf("Run returned %v after %s, want nil promptly", err, took)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("FIFO left behind after Run: %v", err)
	}
}

func TestModeApplied(t *testing.T) {
	t.Parallel()
	for _, mode := range []fs.FileMode{0, 0o620, 0o666} {
		path := filepath.Join(t.TempDir(), "p")
		r := start(t, pipe.Config{Path: path, Coin: "BTC", Mode: mode})
		waitReader(t, r, path)
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		want := mode
		if want == 0 {
			want = pipe.DefaultMode
		}
		if fi.Mode().Type() != fs.ModeNamedPipe || fi.Mode().Perm() != want {
			t.Errorf("mode %v, want FIFO with %v", fi.Mode(), want)
		}
	}
}

func TestStaleReplaced(t *testing.T) {
	t.Parallel()
	t.Run("fifo", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "p")
		if err := unix.Mkfifo(path, 0o644); err != nil {
			t.Fatal(err)
		}
		r := start(t, pipe.Config{Path: path, Coin: "BTC"})
		waitReader(t, r, path)
		now, _ := os.Lstat(path)
		if now.Mode().Perm() != 0o600 { // (tmpfs may reuse the inode number)
			t.Fatalf("stale FIFO not replaced: mode %v", now.Mode())
		}
		write(t, path, txidN(1)+"\n")
		r.expect(t, txidN(1))
	})
	t.Run("regular file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "p")
		// What `echo txid >> path` leaves while nothing reads.
		if err := os.WriteFile(path, []byte(txidN(1)+"\njunk\n"+txidN(2)), 0o644); err != nil {
			t.Fatal(err)
		}
		r := start(t, pipe.Config{Path: path, Coin: "BTC"})
		waitReader(t, r, path)
		r.expect(t, txidN(1), txidN(2))
		write(t, path, txidN(3)+"\n")
		r.expect(t, txidN(3))
	})
}

func TestRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "p")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	err := pipe.New(pipe.Config{Path: path, Coin: "BTC"}, nil).Run(t.Context())
	if !errors.Is(err, pipe.ErrPathInUse) || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("Run over a directory: %v, want ErrPathInUse", err)
	}
	if fi, err := os.Lstat(path); err != nil || !fi.IsDir() {
		t.Fatalf("directory touched: %v", err)
	}

	link := filepath.Join(dir, "link")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if err := pipe.New(pipe.Config{Path: link, Coin: "BTC"}, nil).Run(t.Context()); !errors.Is(err, pipe.ErrPathInUse) {
		t.Fatalf("Run over a symlink: %v, want ErrPathInUse", err)
	}

	for _, cfg := range []pipe.Config{{Coin: "BTC"}, {Path: filepath.Join(dir, "x")}, {Path: filepath.Join(dir, "y"), Coin: "BTC", Mode: fs.ModeDir | 0o700}} {
		if err := pipe.New(cfg, nil).Run(t.Context()); err == nil {
			t.Errorf("Run(%+v) accepted", cfg)
		}
	}
}

func TestCancelWithoutWriters(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "p")
	r := start(t, pipe.Config{Path: path, Coin: "BTC"})
	waitReader(t, r, path)
	if err, took := r.stop(); err != nil || took > time.Second {
		t.Fatalf("Run returned %v after %s, want nil promptly", err, took)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("FIFO left behind: %v", err)
	}
}
