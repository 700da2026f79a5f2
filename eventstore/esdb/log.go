package esdb

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
)

// clientLogger routes the client's log lines to l: its debug and info lines
// at debug level, its warnings and errors (which include every failed or
// cancelled call) at info level; the adapter reports what matters itself.
func clientLogger(l *slog.Logger) esdb.LoggingFunc {
	return func(level esdb.LogLevel, format string, args ...any) {
		lvl := slog.LevelDebug
		if level == esdb.LogWarn || level == esdb.LogError {
			lvl = slog.LevelInfo
		}
		ctx := context.Background()
		if !l.Enabled(ctx, lvl) {
			return
		}
		l.Log(ctx, lvl, "esdb client", "client_level", level, "detail", fmt.Sprintf(format, args...))
	}
}
