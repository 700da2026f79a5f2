package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/coinledger/coinledger/adapters/walletnotify/httpnotify"
)

const notifyUsage = `usage: coinledger notify [-coin C] [-addr HOST:PORT] TXID

Posts a walletnotify for TXID to the running service's walletnotify listener, as
bitcoin.conf's walletnotify=coinledger notify %s does.
`

// notifyCmd posts a walletnotify to a running service's listener:
//
//	walletnotify=coinledger notify %s            (bitcoin.conf)
//	coinledger notify -coin LTC <txid>
func notifyCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("notify", flag.ContinueOnError)
	coin := fs.String("coin", "", "coin of the transaction (default: the listener's default coin)")
	addr := fs.String("addr", "", "listener host:port (default COINLEDGER_WALLETNOTIFY_LISTEN or 127.0.0.1:28882)")
	pos, err := parseFlags(fs, notifyUsage, args, 1)
	if err != nil {
		return err
	}
	listen := *addr
	if listen == "" {
		listen = os.Getenv("COINLEDGER_WALLETNOTIFY_LISTEN")
	}
	if listen == "" {
		listen = httpnotify.DefaultListen
	}
	if err := httpnotify.Post(ctx, nil, "http://"+listen, *coin, pos[0]); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}
