// Package webhook delivers notifications as signed HTTP POSTs.
//
// Each request carries a JSON body and the headers
//
//	Content-Type: application/json
//	User-Agent: coinledger-webhook/1
//	Coinledger-Timestamp: <unix seconds>
//	Coinledger-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">
//	Coinledger-Delivery: <delivery id, the same on every retry>
//	Coinledger-Event: <event type>
//
// Receivers check requests with Verify (or its equivalent in their
// language) and use the delivery id to drop redeliveries.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coinledger/coinledger/adapters/notify"
	"github.com/coinledger/coinledger/domain/egress"
)

// ErrTemporary and ErrPermanent are notify's: a failed Deliver wraps
// exactly one of them.
var (
	ErrTemporary = notify.ErrTemporary
	ErrPermanent = notify.ErrPermanent
)

// ErrInvalidRequest: the Request cannot be sent (bad URL, no secret,
// unusable header values). Deliver wraps it together with ErrPermanent.
var ErrInvalidRequest = errors.New("invalid request")

const (
	userAgent = "coinledger-webhook/1"
	// maxResponseBody is how much of a response body Response keeps.
	maxResponseBody = 1 << 10
	// maxDrain is how much more of a response body is read (and thrown
	// away) so the connection can be reused.
	maxDrain = 64 << 10
	// defaultTimeout bounds a delivery when New is given no client.
	defaultTimeout = 30 * time.Second
)

// Request is one webhook delivery.
type Request struct {
	URL        string // http or https, without user info
	Secret     []byte // the endpoint's signing secret; required
	DeliveryID string // stable across retries of the same notification
	EventType  string
	Body       []byte // JSON
}

// Response is what the receiver answered, kept for the delivery log.
type Response struct {
	Status   int           // HTTP status; 0 if no response arrived
	Body     string        // the first 1 KiB of the body, invalid UTF-8 replaced
	Duration time.Duration // from sending the request to reading the response, by the Sender's clock
}

// Sender posts signed webhook requests. It is safe for concurrent use.
type Sender struct {
	client *http.Client
	clock  func() time.Time
}

// New returns a Sender that posts with a copy of client changed to never
// follow redirects (nil: a client with a 30 s timeout) and stamps requests
// with clock (nil: time.Now). Timeouts are the client's and the context's.
func New(client *http.Client, clock func() time.Time) *Sender {
	var c http.Client
	if client != nil {
		c = *client
	} else {
		c.Timeout = defaultTimeout
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if clock == nil {
		clock = time.Now
	}
	return &Sender{client: &c, clock: clock}
}

// GuardedClient returns a client for New that sends only where p allows:
// every request's URL is checked (scheme, user info, an IP-literal host),
// and every connection is checked at the moment it is made, on the address
// actually dialled (net.Dialer.Control), so a host name that resolves to a
// forbidden address, at any time, is never connected to (DNS rebinding).
// It uses no proxy (a proxy would hide the real target from the check).
// Requests refused by p fail with an error wrapping egress.ErrForbidden.
func GuardedClient(p egress.Policy, timeout time.Duration) *http.Client {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			return p.CheckDial(network, address)
		}}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.Proxy = nil
	t.DialContext = dialer.DialContext
	t.DialTLSContext = nil
	return &http.Client{Timeout: timeout, Transport: guard{p, t},
		// New replaces it; a redirect is checked like any request anyway.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// guard checks each request's URL against a policy before sending it.
type guard struct {
	policy egress.Policy
	next   http.RoundTripper
}

func (g guard) RoundTrip(req *http.Request) (*http.Response, error) {
	if _, err := g.policy.CheckURL(req.URL); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	return g.next.RoundTrip(req)
}

// Deliver posts r.Body to r.URL, signed with r.Secret, and reports the
// receiver's answer. Any 2xx status is success. A 3xx (redirects are not
// followed), 408, 429 or 5xx status, a network error or a timeout gives an
// error wrapping ErrTemporary; any other status, a Request that cannot
// be sent, or a target the client's policy forbids (GuardedClient) gives
// one wrapping ErrPermanent. Response is filled in as far as
// the exchange got, also when there is an error.
func (s *Sender) Deliver(ctx context.Context, r Request) (Response, error) {
	u, err := checkRequest(r)
	if err != nil {
		return Response{}, fmt.Errorf("webhook: deliver %q: %w: %w", r.DeliveryID, ErrPermanent, err)
	}
	op := fmt.Sprintf("webhook: deliver %s to %s", r.DeliveryID, redact(u))

	start := s.clock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return Response{}, fmt.Errorf("%s: %w: %w: %v", op, ErrPermanent, ErrInvalidRequest, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(start.Unix(), 10))
	req.Header.Set(HeaderSignature, Sign(r.Secret, start, r.Body))
	req.Header.Set(HeaderDelivery, r.DeliveryID)
	req.Header.Set(HeaderEvent, r.EventType)

	resp, err := s.client.Do(req)
	if err != nil {
		res := Response{Duration: s.clock().Sub(start)}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return res, fmt.Errorf("%s: %w: %w", op, ErrTemporary, ctxErr)
		}
		// The client's error repeats the URL, query and all; keep only
		// its cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		if errors.Is(err, egress.ErrForbidden) {
			return res, fmt.Errorf("%s: %w: %w", op, ErrPermanent, err)
		}
		return res, fmt.Errorf("%s: %w: %v", op, ErrTemporary, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	res := Response{
		Status:   resp.StatusCode,
		Body:     strings.ToValidUTF8(string(body), "\uFFFD"),
		Duration: s.clock().Sub(start),
	}

	switch code := resp.StatusCode; {
	case code >= 200 && code <= 299:
		return res, nil
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests,
		code >= 300 && code <= 399, code >= 500:
		return res, fmt.Errorf("%s: %w: status %d", op, ErrTemporary, code)
	case code >= 400 && code <= 499:
		return res, fmt.Errorf("%s: %w: status %d", op, ErrPermanent, code)
	default:
		return res, fmt.Errorf("%s: %w: unexpected status %d", op, ErrTemporary, code)
	}
}

// checkRequest validates r and returns its parsed URL.
func checkRequest(r Request) (*url.URL, error) {
	if r.URL == "" {
		return nil, fmt.Errorf("%w: empty url", ErrInvalidRequest)
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		// url's error repeats the whole URL; say only what is wrong.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("%w: url: %v", ErrInvalidRequest, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: url scheme %q, want http or https", ErrInvalidRequest, u.Scheme)
	case u.User != nil:
		return nil, fmt.Errorf("%w: url has user info; put credentials in the signing secret, not the url", ErrInvalidRequest)
	case u.Host == "":
		return nil, fmt.Errorf("%w: url has no host", ErrInvalidRequest)
	case len(r.Secret) == 0:
		return nil, fmt.Errorf("%w: no signing secret", ErrInvalidRequest)
	case !validHeaderValue(r.DeliveryID):
		return nil, fmt.Errorf("%w: delivery id is empty or not printable ASCII", ErrInvalidRequest)
	case !validHeaderValue(r.EventType):
		return nil, fmt.Errorf("%w: event type is empty or not printable ASCII", ErrInvalidRequest)
	}
	return u, nil
}

// validHeaderValue reports whether v is non-empty printable ASCII.
func validHeaderValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}

// redact returns u without its query and fragment, which may carry
// tokens, for error messages.
func redact(u *url.URL) string {
	v := *u
	v.RawQuery, v.Fragment, v.RawFragment = "", "", ""
	if u.RawQuery != "" {
		v.RawQuery = "[redacted]"
	}
	return v.String()
}
