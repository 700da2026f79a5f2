package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/coinledger/coinledger/app/alerting"
	"github.com/coinledger/coinledger/domain/egress"
)

// TestAlertEmailChannelValidated: an alert's email channel must be a bare
// address; anything else (a display name, angle brackets, CR LF header
// injection, no domain) is 400 validation_failed naming channels.email.
func TestAlertEmailChannelValidated(t *testing.T) {
	base := alertRequest{Pair: "BTC-USD", Direction: "above", Target: "64000"}
	for _, email := range []string{
		"Alice <alice@example.com>",
		"<alice@example.com>",
		"alice@example.com\r\nBcc: everyone@example.com",
		"alice@example.com\n",
		"alice@example.com, bob@example.com",
		"alice",
		"alice@",
		"@example.com",
		"alice @example.com",
		"\"Alice\" alice@example.com",
		"alice@example.com\x00",
		"alïce@example.com",
	} {
		req := base
		req.Channels.Email = email
		_, err := alertCommand(req)
		var ae *apiError
		if !errors.As(err, &ae) || ae.status != http.StatusBadRequest || ae.code != "validation_failed" ||
			len(ae.fields) != 1 || ae.fields[0].Field != "channels.email" {
			t.Errorf("email %q: %v (%+v), want 400 validation_failed naming channels.email", email, err, ae)
		}
	}
	for _, email := range []string{"alice@example.com", "a.b+tag@sub.example.co.uk"} {
		req := base
		req.Channels.Email = email
		if _, err := alertCommand(req); err != nil {
			t.Errorf("email %q: %v, want accepted", email, err)
		}
	}
}

// TestAlertChannelProblems: the refusals of an alert's channels have their
// own codes.
func TestAlertChannelProblems(t *testing.T) {
	for _, tt := range []struct {
		err  error
		code string
	}{
		{fmt.Errorf("alerts: create: webhook: %w: 127.0.0.1 is a loopback address", egress.ErrForbidden), "webhook_target_forbidden"},
		{fmt.Errorf("alerts: create: %w: email: no SMTP server is configured", alerting.ErrChannelUnavailable), "channel_unavailable"},
	} {
		p, known := problemOf(tt.err)
		if !known || p.Status != http.StatusUnprocessableEntity || p.Code != tt.code || p.Detail != tt.err.Error() {
			t.Errorf("problemOf(%v) = %+v, want 422 %s with the error as detail", tt.err, p, tt.code)
		}
	}
}
