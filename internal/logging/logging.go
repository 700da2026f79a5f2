// Package logging builds the service's logger: slog text or JSON at a
// chosen level, with attributes carried in a context (a request's id, its
// user) added to every record logged with that context, so that each line
// a request causes names it.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/ThreeDotsLabs/watermill"
)

// Formats and levels New accepts.
const (
	FormatText = "text"
	FormatJSON = "json"
)

// New returns a logger writing to w in format (text, the default, or
// json) from level on (debug, info, the default, warn or error; case does
// not matter). An unknown format or level is an error naming the choices.
func New(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "debug":
		lv = slog.LevelDebug
	case "", "info":
		lv = slog.LevelInfo
	case "warn", "warning":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		return nil, fmt.Errorf("log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	var h slog.Handler
	switch strings.ToLower(format) {
	case "", FormatText:
		h = slog.NewTextHandler(w, opts)
	case FormatJSON:
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("log format %q: want text or json", format)
	}
	ch := contextHandler{Handler: h}
	if f, ok := w.(interface{ Flush() error }); ok {
		ch.flush = f.Flush
	}
	return slog.New(ch), nil
}

type ctxKey struct{}

// With returns ctx carrying attrs besides those it carries already: every
// record logged with the returned context (or one derived from it) gets
// them, through a logger from New.
func With(ctx context.Context, attrs ...slog.Attr) context.Context {
	prev := attrsOf(ctx)
	return context.WithValue(ctx, ctxKey{}, append(prev[:len(prev):len(prev)], attrs...))
}

func attrsOf(ctx context.Context) []slog.Attr {
	if ctx == nil {
		return nil
	}
	a, _ := ctx.Value(ctxKey{}).([]slog.Attr)
	return a
}

// contextHandler adds the context's attributes (With) to each record and,
// over a buffered writer, flushes it after a warning or an error: those
// are written at once, only the routine lines wait.
type contextHandler struct {
	slog.Handler
	flush func() error // nil: the writer is not buffered
}

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if a := attrsOf(ctx); len(a) > 0 {
		r = r.Clone()
		r.AddAttrs(a...)
	}
	err := h.Handler.Handle(ctx, r)
	if h.flush != nil && r.Level >= slog.LevelWarn {
		if ferr := h.flush(); err == nil {
			err = ferr
		}
	}
	return err
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs), h.flush}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name), h.flush}
}

// Watermill adapts logger for watermill, whose routers and pub/subs log
// every start, subscription and handler at info: their lines go to debug,
// their warnings and errors stay as they are.
func Watermill(logger *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(logger, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
}
