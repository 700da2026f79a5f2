package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

const healthcheckUsage = `usage: coinledger healthcheck [-url URL]

Asks the server's /readyz and exits 0 when it answers 200 (ready: stores
open, followers caught up), 1 otherwise, with the answer on stderr. For
container healthchecks: the image has no shell or curl. The server is at -url
(default http:// + COINLEDGER_LISTEN, or http://127.0.0.1:8080; an unspecified
host such as 0.0.0.0 means this machine).
`

// healthcheck asks a server's /readyz.
func healthcheck(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	base := fs.String("url", "", "server URL (default http:// + COINLEDGER_LISTEN)")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	if _, err := parseFlags(fs, healthcheckUsage, args, 0); err != nil {
		return err
	}
	if *base == "" {
		*base = serverURL(os.Getenv("COINLEDGER_LISTEN"))
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*base, "/")+"/readyz", nil)
	if err != nil {
		return usageError(fmt.Sprintf("healthcheck: -url: %v", err))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("healthcheck: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthcheck: not ready: %s %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
