package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// maxBody is the largest request body accepted.
const maxBody = 64 << 10

// bind decodes the JSON body into v strictly (see decode); the media type
// must be JSON. It returns the raw body for request hashing.
func bind(c echo.Context, v any) ([]byte, error) {
	req := c.Request()
	if ct := req.Header.Get(echo.HeaderContentType); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return nil, &apiError{status: http.StatusUnsupportedMediaType, code: "unsupported_media_type",
				detail: "the body must be application/json"}
		}
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxBody+1))
	if err != nil {
		return nil, badRequest("malformed_json", "reading the body: %v", err)
	}
	if err := decode(body, v); err != nil {
		return nil, err
	}
	return body, nil
}

// decode is the strict decoder of request bodies: at most maxBody bytes of
// one JSON object (scanBody: no duplicate or case-variant keys, text valid
// UTF-8 without control characters), no unknown fields, no wrong types, no
// trailing data. Every error is an *apiError.
func decode(body []byte, v any) error {
	if len(body) > maxBody {
		return &apiError{status: http.StatusRequestEntityTooLarge, code: "body_too_large",
			detail: fmt.Sprintf("the body exceeds %d bytes", maxBody)}
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("malformed_json", "the body is empty; a JSON object is required")
	}
	if err := scanBody(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return badRequest("malformed_json", "trailing data after the JSON object")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("malformed_json", "trailing data after the JSON object")
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return badRequest("malformed_json", "invalid JSON at byte %d: %v", syn.Offset, err)
	case errors.As(err, &typ):
		return invalidFields(fieldError{Field: typ.Field, Message: fmt.Sprintf("must be %s, not %s", typ.Type, typ.Value)})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return badRequest("unknown_field", "%s", strings.TrimPrefix(err.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed_json", "the JSON body ends too early")
	}
	return badRequest("malformed_json", "%v", err)
}

// requestHash identifies a request for idempotency: method, route and body.
func requestHash(c echo.Context, body []byte) string {
	h := sha256.New()
	h.Write([]byte(c.Request().Method + " " + c.Request().URL.Path + "\n"))
	var compact bytes.Buffer
	if json.Compact(&compact, body) == nil {
		body = compact.Bytes()
	}
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// idempotencyKey returns the caller-scoped Idempotency-Key, required on
// money-moving writes.
func idempotencyKey(c echo.Context, caller string) (string, error) {
	key := c.Request().Header.Get("Idempotency-Key")
	if key == "" {
		return "", badRequest("idempotency_key_required", "this request needs an Idempotency-Key header")
	}
	if len(key) > 200 {
		return "", badRequest("validation_failed", "Idempotency-Key must have at most 200 characters")
	}
	if !visibleASCII(key, 200) {
		// It is stored with the events: no spaces, controls or other bytes.
		return "", invalidText("Idempotency-Key", "must be visible ASCII (0x21-0x7E)")
	}
	return caller + ":" + key, nil
}

func jsonEncode(c echo.Context, v any) error {
	enc := json.NewEncoder(c.Response())
	return enc.Encode(v)
}
