package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/coinledger/coinledger/app/users"
	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/http/rpc"
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
	return h.principal(r, a.Username, func(ctx context.Context) (users.Access, error) {
		a, _, err := h.access(ctx, token)
		return a, err
	}), expires, nil
}

// principal is the websocket principal of username, whose access now
// current tells (errUnauthorized: the credential no longer works).
func (h *handlers) principal(r *http.Request, username string, current func(context.Context) (users.Access, error)) ws.Principal {
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
		cur, err := current(cctx)
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
		_, err := current(ctx)
		if errors.Is(err, errUnauthorized) {
			return false, nil
		}
		return err == nil, err
	}
	return ws.Principal{Username: username, CanRead: canRead, StillValid: stillValid}
}

// rpcFollower serves JSON-RPC subscriptions from the websocket hub.
type rpcFollower struct{ h *handlers }

// Follow implements rpc.Subscriber. A caller without access (the
// anonymous caller when there is no wildcard user) is refused.
func (f rpcFollower) Follow(ctx context.Context, r *http.Request, caller rpc.Caller, topics []string, from *uint64,
	started func(after uint64), send func(json.RawMessage) error) error {
	b := &rpcBackend{h: f.h}
	c := caller.(rpcCaller)
	a, ok, err := b.access(ctx, c)
	switch {
	case err != nil:
		return b.problem(err)
	case !ok:
		return b.problem(errUnauthorized)
	}
	p := f.h.principal(r, a.Username, func(ctx context.Context) (users.Access, error) {
		a, ok, err := b.access(ctx, c)
		if err == nil && !ok {
			err = errUnauthorized
		}
		return a, err
	})
	err = f.h.hub.Follow(ctx, p, topics, from, started, func(msg []byte) error { return send(msg) })
	switch {
	case errors.Is(err, ws.ErrBadTopics):
		return rpc.Errorf(rpc.CodeInvalidParams, "invalid params: %v", err)
	case errors.Is(err, ws.ErrRevoked):
		return rpc.ErrRevoked
	case err != nil && ctx.Err() == nil:
		f.h.d.Logger.Error("json-rpc subscription failed", "username", a.Username, "err", err)
	}
	return err
}
