// Package pipe reads walletnotify txids from a named pipe (FIFO) that a
// node on the same machine writes to, one txid a line:
//
//	walletnotify=echo %s >> /run/coinledger/btc.pipe
//
// The node runs that as its own user: give the FIFO a mode (and a group,
// outside this package) that lets it write. Consider wrapping the command
// in timeout(1): while coinledger is not running nothing reads the FIFO (or
// the path does not exist and echo creates a regular file, which Run reads
// and replaces at its next start).
package pipe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/coinledger/coinledger/adapters/walletnotify"
)

// ErrPathInUse: the path names something Run will not remove (a directory,
// a socket, a device, a symbolic link).
var ErrPathInUse = errors.New("pipe: path in use by something that is not a FIFO or a regular file")

// DefaultMode is the FIFO's mode when Config.Mode is 0.
const DefaultMode fs.FileMode = 0o600

const (
	// maxLine is the longest line read; longer ones are dropped.
	maxLine = 4096
	// maxStale is how much of a stale regular file is read back.
	maxStale = 1 << 20
)

// Config configures a Source. It can be embedded in the service's YAML
// configuration (mode as an octal number: mode: 0620).
type Config struct {
	// Path of the FIFO; whatever FIFO or regular file is there is replaced.
	Path string `yaml:"path"`
	// Mode is the FIFO's permission bits, set exactly (the umask does not
	// apply); default 0600.
	Mode fs.FileMode `yaml:"mode"`
	// Coin of every txid read.
	Coin string `yaml:"coin"`
	// Logger (nil: discarded).
	Logger *slog.Logger `yaml:"-"`
}

func (c *Config) setDefaults() {
	if c.Mode == 0 {
		c.Mode = DefaultMode
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("path: empty"))
	}
	if c.Mode&^fs.ModePerm != 0 {
		errs = append(errs, fmt.Errorf("mode: %#o has bits besides the permissions", uint32(c.Mode)))
	}
	if strings.TrimSpace(c.Coin) == "" {
		errs = append(errs, errors.New("coin: empty"))
	}
	return errors.Join(errs...)
}

// Source is a named pipe walletnotify source.
type Source struct {
	cfg  Config
	sink walletnotify.Sink
	log  *slog.Logger
}

// New returns a source for cfg that hands notifications to sink. It does
// no I/O; see Run.
func New(cfg Config, sink walletnotify.Sink) *Source {
	cfg.setDefaults()
	return &Source{cfg: cfg, sink: sink,
		log: cfg.Logger.With("source", "pipe", "path", cfg.Path, "coin", cfg.Coin)}
}

// Run creates the FIFO and reads it until ctx is done, then closes and
// removes it (unless something else has replaced it meanwhile).
//
// At start, a FIFO or regular file at the path is removed (a regular file's
// lines, up to 1 MiB, are notified first: a node appends to such a file
// while nothing reads the FIFO path); anything else there is an error
// wrapping ErrPathInUse. Each line read is a txid: blank lines are skipped,
// malformed ones logged and dropped, valid ones given to the sink (a sink
// error is logged; the line is lost). When every writer has closed, reading
// just goes on with the next writer.
//
// Run returns nil once ctx is done, and an error if the configuration is
// invalid or the FIFO cannot be set up or read. Call it once at a time per
// path.
func (s *Source) Run(ctx context.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return fmt.Errorf("pipe config: %w", err)
	}
	path := s.cfg.Path
	if err := s.replaceStale(ctx); err != nil {
		return err
	}
	if err := unix.Mkfifo(path, uint32(s.cfg.Mode.Perm())); err != nil {
		return fmt.Errorf("pipe mkfifo %s: %w", path, err)
	}
	created, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("pipe stat %s: %w", path, err)
	}
	defer func() {
		// Remove the FIFO only if it is still ours.
		if now, err := os.Lstat(path); err == nil && os.SameFile(now, created) {
			if err := os.Remove(path); err != nil {
				s.log.Warn("walletnotify pipe remove failed", "error", err)
			}
		}
	}()
	// Mkfifo's mode is reduced by the umask; set it exactly.
	if err := os.Chmod(path, s.cfg.Mode.Perm()); err != nil {
		return fmt.Errorf("pipe chmod %s: %w", path, err)
	}
	s.log.Info("walletnotify pipe listening", "mode", fmt.Sprintf("%#o", uint32(s.cfg.Mode.Perm())))
	for ctx.Err() == nil {
		if err := s.readFIFO(ctx); err != nil {
			return err
		}
	}
	s.log.Info("walletnotify pipe stopped")
	return nil
}

// readFIFO opens the FIFO and reads lines until ctx is done (nil) or end of
// file (nil: Run reopens), or a read fails (the error).
func (s *Source) readFIFO(ctx context.Context) error {
	// Opening a FIFO read-only blocks until some process opens it for
	// writing: Run would hang, deaf to ctx, until the node first notifies.
	// Opened read-write, it does not block (Linux defines this; POSIX leaves
	// it open), and as we then hold a write end ourselves a read never sees
	// end of file when the node's echo closes its end: it waits for the next
	// writer. The os package puts a FIFO in non-blocking mode under the
	// runtime's poller, so closing the file when ctx is done ends a pending
	// Read.
	f, err := os.OpenFile(s.cfg.Path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("pipe open %s: %w", s.cfg.Path, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = f.Close() })
	defer func() {
		if stop() {
			_ = f.Close()
		}
	}()
	err = s.readLines(ctx, f)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pipe read %s: %w", s.cfg.Path, err)
	}
	s.log.Debug("walletnotify pipe end of file, reopening")
	return nil
}

// readLines notifies each line of r until r ends (nil) or fails.
func (s *Source) readLines(ctx context.Context, r io.Reader) error {
	br := bufio.NewReaderSize(r, maxLine)
	skipping := false // within a line too long to keep
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !skipping {
				s.log.Warn("walletnotify malformed txid dropped", "line", string(line[:80])+"…",
					"error", fmt.Sprintf("line longer than %d bytes", maxLine))
			}
			skipping = true
			continue
		case skipping:
			skipping = false
		case len(line) > 0:
			s.notify(ctx, string(line))
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// notify hands one line (a txid) to the sink; blank lines are skipped.
func (s *Source) notify(ctx context.Context, line string) {
	if strings.TrimSpace(line) == "" {
		return
	}
	walletnotify.Forward(ctx, s.log, s.sink, line, func(raw string) (walletnotify.Notification, error) {
		txid, err := walletnotify.ParseTxID(raw)
		return walletnotify.Notification{Coin: s.cfg.Coin, TxID: txid, Source: "pipe"}, err
	})
}

// replaceStale removes a FIFO or regular file at the path, notifying the
// lines of a regular file first.
func (s *Source) replaceStale(ctx context.Context) error {
	path := s.cfg.Path
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("pipe stat %s: %w", path, err)
	case fi.IsDir():
		return fmt.Errorf("pipe %s: %w: it is a directory", path, ErrPathInUse)
	case fi.Mode().IsRegular():
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("pipe read stale %s: %w", path, err)
		}
		err = s.readLines(ctx, io.LimitReader(f, maxStale))
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("pipe read stale %s: %w", path, err)
		}
	case fi.Mode().Type() == fs.ModeNamedPipe:
	default:
		return fmt.Errorf("pipe %s: %w: it is a %s", path, ErrPathInUse, fi.Mode().Type())
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("pipe remove stale %s: %w", path, err)
	}
	s.log.Info("walletnotify pipe stale file removed", "mode", fi.Mode().String())
	return nil
}
