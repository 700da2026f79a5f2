package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
)

func TestVCSVersion(t *testing.T) {
	for _, tc := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, "dev"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "false"}}, "dev-0123456789ab"},
		{[]debug.BuildSetting{{Key: "vcs.modified", Value: "true"}, {Key: "vcs.revision", Value: "abc"}}, "dev-abc-dirty"},
	} {
		if got := vcsVersion(tc.settings); got != tc.want {
			t.Errorf("vcsVersion(%v) = %q, want %q", tc.settings, got, tc.want)
		}
	}
}

// TestHealthcheck: 200 from /readyz is success; anything else, or nobody
// listening, is an error naming what was answered.
func TestHealthcheck(t *testing.T) {
	var ready atomic.Bool
	ready.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		if !ready.Load() {
			http.Error(w, "catching up", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	if err := healthcheck(ctx, []string{"-url", srv.URL}); err != nil {
		t.Fatalf("ready server: %v", err)
	}
	ready.Store(false)
	if err := healthcheck(ctx, []string{"-url", srv.URL}); err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "catching up") {
		t.Fatalf("unready server: %v", err)
	}
	t.Setenv("COINLEDGER_LISTEN", "0.0.0.0:"+srv.URL[strings.LastIndex(srv.URL, ":")+1:])
	if err := healthcheck(ctx, nil); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("server at COINLEDGER_LISTEN: %v", err)
	}
}
