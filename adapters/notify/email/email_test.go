package email_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"net"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/notify/email"
	"github.com/coinledger/coinledger/adapters/notify/email/mailpittest"
)

const from = "Coinledger <noreply@coinledger.test>"

// uniq returns a string no other test uses, for recipients and subjects.
func uniq() string { return strings.ToLower(rand.Text()[:12]) }

// mailpit returns a config for the test mailpit server and its API URL.
func mailpit(t *testing.T) (email.Config, string) {
	t.Helper()
	addr, api := mailpittest.Addr(t)
	return configFor(t, addr), api
}

// configFor returns a plain-text config for the SMTP server at addr.
func configFor(t *testing.T, addr string) email.Config {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("smtp address %q: %v", addr, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		t.Fatalf("smtp address %q: %v", addr, err)
	}
	return email.Config{Host: host, Port: p, From: from, TLS: email.TLSNone, Timeout: 10 * time.Second}
}

func mustNew(t *testing.T, cfg email.Config) *email.Sender {
	t.Helper()
	s, err := email.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// wantKind fails the test unless err wraps kind and not the other one.
func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	other := email.ErrPermanent
	if kind == email.ErrPermanent {
		other = email.ErrTemporary
	}
	if !errors.Is(err, kind) || errors.Is(err, other) {
		t.Fatalf("Send: %v, want %v only", err, kind)
	}
}

func TestSendArrives(t *testing.T) {
	t.Parallel()
	cfg, api := mailpit(t)
	u := uniq()
	to := "alice-" + u + "@example.test"
	m := email.Message{
		To:      []string{"Alice <" + to + ">", "bob-" + u + "@example.test"},
		Subject: "Einzahlung bestätigt " + u,
		Text:    "Your deposit of 0.5 BTC is confirmed.",
		HTML:    "<p>Your deposit of <b>0.5 BTC</b> is confirmed.</p>",
		ID:      "ntf-" + u,
		Headers: map[string]string{"X-Coinledger-Event": "deposit.confirmed"},
	}
	if err := mustNew(t, cfg).Send(context.Background(), m); err != nil {
		t.Fatalf("Send: %v", err)
	}

	got := mailpittest.WaitFor(t, api, `to:"`+to+`"`, 1)
	if len(got) != 1 {
		t.Fatalf("%d messages arrived, want 1", len(got))
	}
	g := got[0]
	if g.Subject != m.Subject {
		t.Errorf("Subject = %q, want %q", g.Subject, m.Subject)
	}
	if g.MessageID != "ntf-"+u+"@coinledger" {
		t.Errorf("Message-ID = %q, want ntf-%s@coinledger", g.MessageID, u)
	}
	if g.From.Address != "noreply@coinledger.test" || g.From.Name != "Coinledger" {
		t.Errorf("From = %+v", g.From)
	}
	if len(g.To) != 2 || g.To[0].Address != to || g.To[0].Name != "Alice" {
		t.Errorf("To = %+v", g.To)
	}
	if !strings.Contains(g.Text, m.Text) {
		t.Errorf("Text = %q, want it to contain %q", g.Text, m.Text)
	}
	if !strings.Contains(g.HTML, m.HTML) {
		t.Errorf("HTML = %q, want it to contain %q", g.HTML, m.HTML)
	}
	if v := g.Headers["X-Coinledger-Event"]; len(v) != 1 || v[0] != "deposit.confirmed" {
		t.Errorf("X-Coinledger-Event = %q", v)
	}
}

func TestSendRedeliveryKeepsMessageID(t *testing.T) {
	t.Parallel()
	cfg, api := mailpit(t)
	u := uniq()
	to := "redeliver-" + u + "@example.test"
	s := mustNew(t, cfg)
	m := email.Message{To: []string{to}, Subject: "Withdrawal sent", Text: "sent", ID: "ntf-" + u + "@mail.coinledger.test"}
	for range 2 {
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	got := mailpittest.WaitFor(t, api, `to:"`+to+`"`, 2)
	if len(got) != 2 {
		t.Fatalf("%d messages arrived, want 2", len(got))
	}
	for _, g := range got {
		if g.MessageID != m.ID {
			t.Errorf("Message-ID = %q, want %q", g.MessageID, m.ID)
		}
	}
}

func TestSendTextOnly(t *testing.T) {
	t.Parallel()
	cfg, api := mailpit(t)
	to := "text-" + uniq() + "@example.test"
	if err := mustNew(t, cfg).Send(context.Background(), email.Message{To: []string{to}, Subject: "plain", Text: "just text"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	g := mailpittest.WaitFor(t, api, `to:"`+to+`"`, 1)[0]
	if strings.TrimSpace(g.Text) != "just text" || g.HTML != "" {
		t.Errorf("Text = %q, HTML = %q", g.Text, g.HTML)
	}
	if g.MessageID == "" {
		t.Error("no Message-ID")
	}
}

func TestSendWithAuth(t *testing.T) {
	t.Parallel()
	cfg, api := mailpit(t)
	cfg.Username, cfg.Password = "alice", "hunter2"
	to := "auth-" + uniq() + "@example.test"
	if err := mustNew(t, cfg).Send(context.Background(), email.Message{To: []string{to}, Subject: "with auth", Text: "hi"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	mailpittest.WaitFor(t, api, `to:"`+to+`"`, 1)
}

// TestSendRefusesPlainTextPassword: with STARTTLS optional and a server
// without it, the password is not sent.
func TestSendRefusesPlainTextPassword(t *testing.T) {
	t.Parallel()
	cfg, _ := mailpit(t)
	cfg.TLS = email.TLSStartTLSOpportunistic
	cfg.Username, cfg.Password = "alice", "hunter2"
	err := mustNew(t, cfg).Send(context.Background(), email.Message{To: []string{"x-" + uniq() + "@example.test"}, Text: "hi"})
	wantKind(t, err, email.ErrPermanent)
	if !strings.Contains(err.Error(), "plain text") || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Send: %v", err)
	}
}

func TestSendOpportunisticWithoutTLS(t *testing.T) {
	t.Parallel()
	cfg, api := mailpit(t)
	cfg.TLS = email.TLSStartTLSOpportunistic
	to := "opportunistic-" + uniq() + "@example.test"
	if err := mustNew(t, cfg).Send(context.Background(), email.Message{To: []string{to}, Text: "hi"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	mailpittest.WaitFor(t, api, `to:"`+to+`"`, 1)
}

func TestSendMandatorySTARTTLS(t *testing.T) {
	t.Parallel()
	for _, user := range []string{"", "alice"} {
		t.Run("user="+user, func(t *testing.T) {
			t.Parallel()
			cfg, _ := mailpit(t)
			cfg.TLS = email.TLSStartTLS
			if user != "" {
				cfg.Username, cfg.Password = user, "hunter2"
			}
			err := mustNew(t, cfg).Send(context.Background(), email.Message{To: []string{"x-" + uniq() + "@example.test"}, Text: "hi"})
			wantKind(t, err, email.ErrPermanent)
			if !strings.Contains(err.Error(), "does not offer STARTTLS") || strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Send: %v", err)
			}
		})
	}
}

func TestSendImplicitTLSToPlainServer(t *testing.T) {
	t.Parallel()
	cfg, _ := mailpit(t)
	cfg.TLS = email.TLSImplicit
	err := mustNew(t, cfg).Send(context.Background(), email.Message{To: []string{"x-" + uniq() + "@example.test"}, Text: "hi"})
	wantKind(t, err, email.ErrPermanent)
}

func TestSendServerDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cfg := configFor(t, addr)
	cfg.Username, cfg.Password = "alice", "hunter2"
	err = mustNew(t, cfg).Send(context.Background(), email.Message{To: []string{"a@example.test"}, Text: "hi"})
	wantKind(t, err, email.ErrTemporary)
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("Send shows the password: %v", err)
	}
}

func TestSendInvalidMessage(t *testing.T) {
	t.Parallel()
	// Nothing listens here: an invalid message must fail before dialling,
	// or the error would be temporary.
	s := mustNew(t, configFor(t, "127.0.0.1:1"))
	valid := email.Message{To: []string{"a@example.test"}, Subject: "s", Text: "t", ID: "ntf-1"}
	tests := []struct {
		name string
		edit func(*email.Message)
	}{
		{"no recipient", func(m *email.Message) { m.To = nil }},
		{"bad recipient", func(m *email.Message) { m.To = []string{"a@example.test", "not an address"} }},
		{"id with space", func(m *email.Message) { m.ID = "ntf 1" }},
		{"id with brackets", func(m *email.Message) { m.ID = "<ntf-1@coinledger>" }},
		{"id with two @", func(m *email.Message) { m.ID = "a@b@c" }},
		{"id ending in a dot", func(m *email.Message) { m.ID = "ntf." }},
		{"id too long", func(m *email.Message) { m.ID = strings.Repeat("a", 201) }},
		{"reserved header", func(m *email.Message) { m.Headers = map[string]string{"message-id": "<x@y>"} }},
		{"content header", func(m *email.Message) { m.Headers = map[string]string{"Content-Type": "text/html"} }},
		{"header name with colon", func(m *email.Message) { m.Headers = map[string]string{"X-A:": "1"} }},
		{"header value with newline", func(m *email.Message) { m.Headers = map[string]string{"X-A": "1\r\nBcc: eve@example.test"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := valid
			tt.edit(&m)
			err := s.Send(context.Background(), m)
			wantKind(t, err, email.ErrPermanent)
			if !errors.Is(err, email.ErrInvalidMessage) {
				t.Errorf("Send: %v, want ErrInvalidMessage", err)
			}
		})
	}
}

// fakeSMTP serves SMTP on a local port for replies mailpit cannot be made
// to give: it greets with greeting (empty: says nothing at all) and
// answers each command with replies[verb], or with a plausible success.
// The returned function lists the command lines it received.
func fakeSMTP(t *testing.T, greeting string, replies map[string]string) (addr string, received func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{greeting: greeting, replies: replies}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			wg.Go(func() { f.serve(c) })
		}
	})
	return ln.Addr().String(), func() []string {
		f.mu.Lock()
		defer f.mu.Unlock()
		return slices.Clone(f.lines)
	}
}

type fake struct {
	greeting string
	replies  map[string]string

	mu    sync.Mutex
	conns []net.Conn
	lines []string
}

func (f *fake) serve(c net.Conn) {
	defer c.Close()
	tp := textproto.NewConn(c)
	readLine := func() (string, error) {
		line, err := tp.ReadLine()
		if err == nil {
			f.mu.Lock()
			f.lines = append(f.lines, line)
			f.mu.Unlock()
		}
		return line, err
	}
	if f.greeting == "" {
		_, _ = tp.ReadLine() // a server that accepts and never speaks
		return
	}
	if tp.PrintfLine("%s", f.greeting) != nil || !strings.HasPrefix(f.greeting, "220") {
		return
	}
	for {
		line, err := readLine()
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
		reply, ok := f.replies[verb]
		switch {
		case ok:
		case verb == "EHLO":
			reply = "250-fake\r\n250-AUTH PLAIN LOGIN\r\n250 ENHANCEDSTATUSCODES"
		case line == "AUTH LOGIN":
			for _, prompt := range []string{"Username:", "Password:"} {
				if tp.PrintfLine("334 %s", base64.StdEncoding.EncodeToString([]byte(prompt))) != nil {
					return
				}
				if _, err := readLine(); err != nil {
					return
				}
			}
			reply = "235 2.7.0 authenticated"
		case verb == "AUTH":
			reply = "235 2.7.0 authenticated"
		case verb == "DATA":
			if tp.PrintfLine("354 go ahead") != nil {
				return
			}
			if _, err := tp.ReadDotBytes(); err != nil {
				return
			}
			reply = "250 2.0.0 queued"
		case verb == "QUIT":
			_ = tp.PrintfLine("221 bye")
			return
		default:
			reply = "250 2.0.0 ok"
		}
		if tp.PrintfLine("%s", reply) != nil {
			return
		}
	}
}

func TestSendAuthMechanisms(t *testing.T) {
	t.Parallel()
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		offer string
		want  []string // the lines the server receives after EHLO
	}{
		{"PLAIN LOGIN", []string{"AUTH PLAIN " + b64("\x00alice\x00hunter2")}},
		{"LOGIN", []string{"AUTH LOGIN", b64("alice"), b64("hunter2")}},
	}
	for _, tt := range tests {
		t.Run(tt.offer, func(t *testing.T) {
			t.Parallel()
			addr, received := fakeSMTP(t, "220 fake", map[string]string{"EHLO": "250-fake\r\n250 AUTH " + tt.offer})
			cfg := configFor(t, addr)
			cfg.Username, cfg.Password = "alice", "hunter2"
			if err := mustNew(t, cfg).Send(context.Background(), email.Message{To: []string{"a@example.test"}, Text: "t"}); err != nil {
				t.Fatalf("Send: %v", err)
			}
			lines := received()
			if len(lines) < 1+len(tt.want) || !slices.Equal(lines[1:1+len(tt.want)], tt.want) {
				t.Errorf("server received %q, want EHLO then %q", lines, tt.want)
			}
		})
	}
}

func TestSendClassifiesReplies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		greeting string
		replies  map[string]string
		username string
		want     error // nil: delivered
	}{
		{"accepted", "220 fake", nil, "", nil},
		{"accepted with auth", "220 fake", nil, "alice", nil},
		{"service not available", "421 4.3.2 try later", nil, "", email.ErrTemporary},
		{"refused", "554 5.7.1 go away", nil, "", email.ErrPermanent},
		{"recipient rejected", "220 fake", map[string]string{"RCPT": "550 5.1.1 no such user"}, "", email.ErrPermanent},
		{"mailbox busy", "220 fake", map[string]string{"RCPT": "451 4.2.1 try later"}, "", email.ErrTemporary},
		{"sender rejected", "220 fake", map[string]string{"MAIL": "553 5.1.8 bad sender"}, "", email.ErrPermanent},
		{"greylisted", "220 fake", map[string]string{"MAIL": "450 4.7.1 greylisted"}, "", email.ErrTemporary},
		{"authentication failed", "220 fake", map[string]string{"AUTH": "535 5.7.8 bad credentials"}, "alice", email.ErrPermanent},
		{"authentication unavailable", "220 fake", map[string]string{"AUTH": "454 4.7.0 try later"}, "alice", email.ErrTemporary},
		{"no plain or login", "220 fake", map[string]string{"EHLO": "250-fake\r\n250 AUTH CRAM-MD5"}, "alice", email.ErrPermanent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := fakeSMTP(t, tt.greeting, tt.replies)
			cfg := configFor(t, addr)
			if tt.username != "" {
				cfg.Username, cfg.Password = tt.username, "hunter2"
			}
			err := mustNew(t, cfg).Send(context.Background(), email.Message{To: []string{"a@example.test"}, Subject: "s", Text: "t"})
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Send: %v", err)
				}
				return
			}
			wantKind(t, err, tt.want)
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Send shows the password: %v", err)
			}
		})
	}
}

func TestSendSilentServerTimesOut(t *testing.T) {
	t.Parallel()
	addr, _ := fakeSMTP(t, "", nil)
	cfg := configFor(t, addr)
	cfg.Timeout = 200 * time.Millisecond
	start := time.Now()
	err := mustNew(t, cfg).Send(context.Background(), email.Message{To: []string{"a@example.test"}, Text: "t"})
	wantKind(t, err, email.ErrTemporary)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send: %v, want context.DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send took %v with a 200ms timeout", d)
	}
}

func TestSendCanceled(t *testing.T) {
	t.Parallel()
	addr, _ := fakeSMTP(t, "", nil)
	cfg := configFor(t, addr)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err := mustNew(t, cfg).Send(ctx, email.Message{To: []string{"a@example.test"}, Text: "t"})
	wantKind(t, err, email.ErrTemporary)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Send: %v, want context.Canceled", err)
	}
}
