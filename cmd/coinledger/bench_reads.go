package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
)

// benchReads measures balance reads (GET /api/v1/wallets/{w}/accounts/{a})
// over HTTP against the service run as its own process, like bench
// transfers; --against compares with another build.
func benchReads(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench reads", flag.ContinueOnError)
	o := httpBenchFlags(fs, 60_000)
	if _, err := parseFlags(fs, benchUsage, args, 0); err != nil {
		return err
	}
	if err := o.check(); err != nil {
		return err
	}
	return o.run(ctx, readLoad, 0)
}

// readLoad: each operation reads the worker's source account.
var readLoad = httpLoad{
	scenario: "reads",
	unit:     "reads",
	title:    "account reads over HTTP (GET /wallets/{w}/accounts/{a})",
	label:    "coinledger serve",
	setUp:    (*benchClient).setUp,
	op: func(c *benchClient, w, _ int) error {
		status, body, err := c.get(fmt.Sprintf("/wallets/bench/accounts/src%d", w))
		if err != nil || status != http.StatusOK {
			return fmt.Errorf("read: %d %s %v", status, body, err)
		}
		return nil
	},
}
