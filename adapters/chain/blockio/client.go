package blockio

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"

	"github.com/coinledger/coinledger/app/chainsync"
)

const (
	userAgent = "coinledger-blockio/1"
	// maxResponse bounds a response body.
	maxResponse = 8 << 20
)

// APIError is block.io's answer {"status":"fail"}: the call was refused.
// Message is block.io's error_message with the API key and PIN removed.
type APIError struct {
	Method     string // e.g. get_raw_transaction
	HTTPStatus int
	Message    string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("blockio %s: fail (HTTP %d): %s", e.Method, e.HTTPStatus, e.Message)
}

// transient reports whether the refusal says nothing about the request
// itself: the key or the calling IP is not allowed, a rate limit, a fault
// on block.io's side. The wording is block.io's documented message for a
// refused key; the rest is matched loosely.
func (e *APIError) transient() bool {
	if e.HTTPStatus == http.StatusTooManyRequests || e.HTTPStatus >= 500 {
		return true
	}
	m := strings.ToLower(e.Message)
	for _, s := range []string{"api key", "api access", "ip address", "rate limit", "too many requests", "try again", "temporarily", "maintenance"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// notFound reports whether the refusal says the transaction is unknown:
// HTTP 404, or a message saying so (block.io's wording is not documented;
// it is matched loosely).
func (e *APIError) notFound() bool {
	if e.transient() {
		return false
	}
	if e.HTTPStatus == http.StatusNotFound {
		return true
	}
	m := strings.ToLower(e.Message)
	for _, s := range []string{"not found", "does not exist", "no such", "unknown transaction", "invalid txid", "invalid transaction id", "parameter txid"} {
		if strings.Contains(m, s) {
			return true
		}
	}
	return false
}

// transportError: no usable answer arrived. written tells whether the
// request had been written completely when it failed.
type transportError struct {
	written bool
	msg     string // redacted
}

func (e *transportError) Error() string { return e.msg }

// statusError: an HTTP error status without block.io's JSON.
type statusError struct{ status int }

func (e *statusError) Error() string { return fmt.Sprintf("HTTP status %d", e.status) }

// envelope is every block.io answer.
type envelope struct {
	Status string          `json:"status"`
	Data   json.RawMessage `json:"data"`
}

// call POSTs params (plus the API key) to method and decodes data of a
// success answer into out. Errors are *APIError, *transportError,
// *statusError or ErrMalformed, all free of the credentials.
func (b *Backend) call(ctx context.Context, method string, params map[string]any, out any) error {
	body := map[string]any{"api_key": b.cfg.APIKey.Reveal()}
	for k, v := range params {
		body[k] = v
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("%w: encoding %s: %v", ErrMalformed, method, err)
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	defer cancel()
	var written atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(i httptrace.WroteRequestInfo) {
			if i.Err == nil {
				written.Store(true)
			}
		},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.cfg.BaseURL+method, bytes.NewReader(payload))
	if err != nil {
		return &transportError{msg: b.redact(err.Error())}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := b.client.Do(req)
	if err != nil {
		return &transportError{written: written.Load(), msg: b.redact(err.Error())}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	if err != nil {
		return &transportError{written: true, msg: b.redact(err.Error())}
	}
	if len(raw) > maxResponse {
		return fmt.Errorf("%w: %s answer larger than %d bytes", ErrMalformed, method, maxResponse)
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil || env.Status == "" {
		if resp.StatusCode >= 300 {
			return &statusError{status: resp.StatusCode}
		}
		return fmt.Errorf("%w: %s answer is not block.io's JSON", ErrMalformed, method)
	}
	switch env.Status {
	case "success":
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(env.Data, out); err != nil {
			return fmt.Errorf("%w: %s data: %s", ErrMalformed, method, b.redact(err.Error()))
		}
		return nil
	case "fail":
		var d struct {
			ErrorMessage string `json:"error_message"`
		}
		_ = json.Unmarshal(env.Data, &d)
		return &APIError{Method: method, HTTPStatus: resp.StatusCode, Message: b.redact(d.ErrorMessage)}
	default:
		return fmt.Errorf("%w: %s status %q", ErrMalformed, method, b.redact(env.Status))
	}
}

// redact removes the credentials from s.
func (b *Backend) redact(s string) string {
	for _, secret := range []Secret{b.cfg.APIKey, b.cfg.PIN} {
		if v := secret.Reveal(); v != "" {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// classify maps an error of call to the chain sentinels: transport
// failures, HTTP errors, malformed answers and transient refusals are
// chainsync.ErrUnavailable; other refusals are onFail (nil: the *APIError
// alone).
func classify(err error, onFail error) error {
	var api *APIError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &api) && !api.transient():
		if onFail == nil {
			return err
		}
		return fmt.Errorf("%w: %w", onFail, err)
	default:
		return fmt.Errorf("%w: %w", chainsync.ErrUnavailable, err)
	}
}

// classifySubmit maps an error of the call that broadcasts: only a request
// that was never completely written is chainsync.ErrUnavailable; anything
// after that, a refusal included, is chainsync.ErrAmbiguous.
func classifySubmit(err error) error {
	var te *transportError
	if err == nil {
		return nil
	}
	if errors.As(err, &te) && !te.written {
		return fmt.Errorf("%w: %w", chainsync.ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %w", chainsync.ErrAmbiguous, err)
}
