package api

import (
	"bytes"
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openapiJSON is the HTTP contract, OpenAPI 3.1. It is the single source of
// truth: handlers, tests (http/apitest) and the /docs page all read it.
//
//go:embed openapi.json
var openapiJSON []byte

// docsHTML renders openapiJSON in the browser without any external resource.
//
//go:embed docs/index.html
var docsHTML []byte

// docsCSP lets the page run its own inline script and style and fetch the
// document from this origin, and nothing else.
const docsCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:"

// OpenAPI returns a copy of the embedded OpenAPI document.
func OpenAPI() []byte { return bytes.Clone(openapiJSON) }

// OpenAPIHandler serves the OpenAPI document (GET /api/openapi.json).
func OpenAPIHandler() echo.HandlerFunc {
	return func(c echo.Context) error {
		c.Response().Header().Set("Cache-Control", "no-cache")
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openapiJSON)
	}
}

// DocsHandler serves the documentation page (GET /docs), which fetches
// /api/openapi.json and renders it.
func DocsHandler() echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", docsCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		return c.Blob(http.StatusOK, echo.MIMETextHTMLCharsetUTF8, docsHTML)
	}
}

// RegisterDocs adds GET /api/openapi.json and GET /docs to e.
func RegisterDocs(e *echo.Echo) {
	e.GET("/api/openapi.json", OpenAPIHandler())
	e.GET("/docs", DocsHandler())
}
