// Package mailpittest lets tests use the mailpit SMTP server that the
// project's test script (test/servers.sh) starts: where it is, and which
// mail it has received.
package mailpittest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// Environment variables the test script exports.
const (
	EnvSMTPAddr = "COINLEDGER_TEST_SMTP_ADDR"   // host:port of mailpit's SMTP server (no TLS, any auth)
	EnvAPIURL   = "COINLEDGER_TEST_MAILPIT_URL" // base URL of its HTTP API, e.g. http://127.0.0.1:28025
)

// waitTimeout bounds WaitFor.
const waitTimeout = 15 * time.Second

// Address is a mail address as mailpit reports it.
type Address struct {
	Name    string
	Address string
}

// Message is a mail mailpit received.
type Message struct {
	ID        string // mailpit's id
	MessageID string // the Message-ID header, without angle brackets
	From      Address
	To        []Address
	Subject   string
	Text      string
	HTML      string
	// Headers are all header fields, keys as sent.
	Headers map[string][]string
}

// Addr returns mailpit's SMTP address and API base URL. Without them in
// the environment the test fails if CI is set and is skipped otherwise.
func Addr(tb testing.TB) (smtpAddr, apiURL string) {
	tb.Helper()
	smtpAddr, apiURL = os.Getenv(EnvSMTPAddr), strings.TrimRight(os.Getenv(EnvAPIURL), "/")
	if smtpAddr == "" || apiURL == "" {
		msg := fmt.Sprintf("no mailpit: %s and %s must be set (test/servers.sh start sets them)", EnvSMTPAddr, EnvAPIURL)
		if os.Getenv("CI") != "" {
			tb.Fatal(msg)
		}
		tb.Skip(msg)
	}
	return smtpAddr, apiURL
}

// WaitFor polls mailpit until its search for query (mailpit's search
// syntax, e.g. `to:"a@example.com"` or `subject:"..."`) finds at least n
// messages, and returns all it found, oldest first, in full. It fails the
// test if that does not happen within 15 s. Use a query unique to the
// test: mailpit keeps every test's mail.
func WaitFor(tb testing.TB, apiURL, query string, n int) []Message {
	tb.Helper()
	var found searchResult
	deadline := time.Now().Add(waitTimeout)
	for {
		found = searchResult{}
		err := get(apiURL+"/api/v1/search?limit=250&query="+url.QueryEscape(query), &found)
		if err == nil && len(found.Messages) >= n {
			break
		}
		if time.Now().After(deadline) {
			if err != nil {
				tb.Fatalf("mailpit search %q: %v", query, err)
			}
			tb.Fatalf("mailpit search %q: %d messages after %v, want %d", query, len(found.Messages), waitTimeout, n)
		}
		time.Sleep(50 * time.Millisecond)
	}

	msgs := make([]Message, 0, len(found.Messages))
	for _, s := range slices.Backward(found.Messages) { // mailpit lists newest first
		var m Message
		if err := get(apiURL+"/api/v1/message/"+url.PathEscape(s.ID), &m); err != nil {
			tb.Fatalf("mailpit message %s: %v", s.ID, err)
		}
		if err := get(apiURL+"/api/v1/message/"+url.PathEscape(s.ID)+"/headers", &m.Headers); err != nil {
			tb.Fatalf("mailpit headers of %s: %v", s.ID, err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

type searchResult struct {
	Messages []struct{ ID string }
}

// get decodes the JSON at u into v.
func get(u string, v any) error {
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}
