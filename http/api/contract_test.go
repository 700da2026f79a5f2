package api_test

import (
	"maps"
	"net/http"
	"regexp"
	"slices"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"

	"github.com/coinledger/coinledger/http/api"
)

// TestRoutesMatchContract: the contract tells the truth. Every route the
// router mounts is an operation of openapi.json and every operation is
// mounted: a route added without its documentation, or documentation of a
// route that answers 404, fails here. The only routes left out are the
// external services' notification POSTs under /hooks/ (mounted when a
// notifier is configured; they are the senders' contracts, not ours).
func TestRoutesMatchContract(t *testing.T) {
	ts := newTestServer(t, func(d *api.Deps) { d.Hooks = http.NotFoundHandler() })
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI())
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	param := regexp.MustCompile(`:([A-Za-z_]+)`)
	mounted := map[string]bool{}
	for _, r := range ts.API.Routes() {
		// A group with middleware mounts Echo's own not-found routes.
		if r.Path == "/hooks/*" || r.Method == echo.RouteNotFound {
			continue
		}
		mounted[r.Method+" "+param.ReplaceAllString(r.Path, "{$1}")] = true
	}
	for _, route := range slices.Sorted(maps.Keys(mounted)) {
		if !documented[route] {
			t.Errorf("%s is mounted but not in openapi.json", route)
		}
	}
	for _, route := range slices.Sorted(maps.Keys(documented)) {
		if !mounted[route] {
			t.Errorf("%s is in openapi.json but not mounted", route)
		}
	}
}
