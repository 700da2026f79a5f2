package api

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/coinledger/coinledger/domain/ledger"
	"github.com/coinledger/coinledger/http/ws"
	"github.com/labstack/echo/v4"
)

type requestKey struct{}

// websocket serves /api/v1/ws: the ws package speaks the protocol; the
// caller's credentials and wallet permissions are checked here, as for
// every other endpoint (the IP allowlists against the connecting client).
func (h *handlers) websocket(hub *ws.Handler) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		hub.ServeHTTP(c.Response(), r.WithContext(context.WithValue(r.Context(), requestKey{}, r)))
		return nil
	}
}

// walletReadTTL is how long a websocket connection trusts a wallet read
// check before asking again (a revoked grant stops events within it).
const walletReadTTL = 5 * time.Second

func (h *handlers) wsPrincipal(ctx context.Context, token string) (ws.Principal, time.Time, error) {
	a, expires, err := h.access(ctx, token)
	if err != nil {
		return ws.Principal{}, time.Time{}, err
	}
	r, _ := ctx.Value(requestKey{}).(*http.Request)
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
		ok = err == nil && r != nil
		if ok {
			_, err = h.checkWallet(cctx, cur, wallet, ledger.PermRead, r)
			ok = err == nil
		}
		mu.Lock()
		seen[wallet] = verdict{ok, time.Now()}
		mu.Unlock()
		return ok
	}
	return ws.Principal{Username: a.Username, CanRead: canRead}, expires, nil
}
