package api

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/http/ws"
)

// walletReadTTL is how long a websocket connection trusts a wallet read
// check before asking again (a revoked grant stops events within it).
const walletReadTTL = 5 * time.Second

// wsPrincipal authenticates a websocket's token like any request and
// answers its wallet reads from the caller's current state, checked again
// every walletReadTTL.
func (h *handlers) wsPrincipal(r *http.Request, token string) (ws.Principal, time.Time, error) {
	a, expires, err := h.access(r.Context(), token)
	if err != nil {
		return ws.Principal{}, time.Time{}, err
	}
	type verdict struct {
		ok bool
		at time.Time
	}
	var mu sync.Mutex
	seen := map[string]verdict{}
	canRead := func(wallet string) bool {
		mu.Lock()
		v, ok := seen[wallet]
		mu.Unlock()
		if ok && time.Since(v.at) < walletReadTTL {
			return v.ok
		}
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// The credential and the user's state now, not at connect time.
		cur, _, err := h.access(cctx, token)
		if err == nil {
			_, err = h.checkWallet(cctx, cur, wallet, ledger.PermRead, r)
		}
		ok = err == nil
		mu.Lock()
		seen[wallet] = verdict{ok, time.Now()}
		mu.Unlock()
		return ok
	}
	// Every topic, not only wallet ones: the socket lives only as long as
	// the credential (logout, session revocation, key revocation and
	// disabling end it; see ws.Principal.StillValid).
	stillValid := func(ctx context.Context) (bool, error) {
		_, _, err := h.access(ctx, token)
		if errors.Is(err, errUnauthorized) {
			return false, nil
		}
		return err == nil, err
	}
	return ws.Principal{Username: a.Username, CanRead: canRead, StillValid: stillValid}, expires, nil
}
