package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/coinledger/coinledger/adapters/walletnotify/httpnotify"
)

// notifyCmd posts a walletnotify to a running service's listener:
//
//	walletnotify=coinledger notify %s            (bitcoin.conf)
//	coinledger notify -coin LTC <txid>
func notifyCmd(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("notify", flag.ContinueOnError)
	coin := fs.String("coin", "", "coin of the transaction (default: the listener's default coin)")
	addr := fs.String("addr", "", "listener host:port (default COINLEDGER_WALLETNOTIFY_LISTEN or 127.0.0.1:28882)")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if fs.NArg() != 1 {
		return usageError("notify takes one txid")
	}
	listen := *addr
	if listen == "" {
		listen = os.Getenv("COINLEDGER_WALLETNOTIFY_LISTEN")
	}
	if listen == "" {
		listen = httpnotify.DefaultListen
	}
	if err := httpnotify.Post(ctx, nil, "http://"+listen, *coin, fs.Arg(0)); err != nil {
		return fmt.Errorf("notify: %w", err)
	}
	return nil
}
