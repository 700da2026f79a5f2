package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestRequestIDKeptOnlyWhenVisibleASCII: a client X-Request-ID of 1 to 128
// visible ASCII characters is the request's correlation id; anything else
// is replaced by a generated one.
func TestRequestIDKeptOnlyWhenVisibleASCII(t *testing.T) {
	e := echo.New()
	e.Use(requestID)
	e.GET("/", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) })
	for _, tc := range []struct {
		id   string
		kept bool
	}{
		{"trace-42/abc", true},
		{strings.Repeat("a", 128), true},
		{"!~", true},
		{strings.Repeat("a", 129), false},
		{strings.Repeat("x", 1<<20), false},
		{"has space", false},
		{"tab\there", false},
		{"ünïcode", false},
		{"nul\x00", false},
		{"del\x7f", false},
		{"", false},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		if tc.id != "" {
			req.Header.Set(echo.HeaderXRequestID, tc.id)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)
		got := rec.Header().Get(echo.HeaderXRequestID)
		if tc.kept && got != tc.id || !tc.kept && (got == tc.id || !visibleASCII(got, maxRequestID)) {
			t.Errorf("X-Request-ID %.20q: answered %.40q, kept %v", tc.id, got, tc.kept)
		}
	}
}
