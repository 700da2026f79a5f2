// Package email sends notification emails over SMTP, one message per
// connection, and says whether a failure is worth retrying.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/coinledger/coinledger/adapters/secret"
	"net"
	"net/textproto"
	"strconv"
	"strings"

	mail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/coinledger/coinledger/adapters/notify"
)

// ErrTemporary and ErrPermanent are notify's: a failed Send wraps exactly
// one of them.
var (
	ErrTemporary = notify.ErrTemporary
	ErrPermanent = notify.ErrPermanent
)

// ErrInvalidMessage: the Message cannot be sent as it is (no or invalid
// recipients, a bad ID or header). Send wraps it together with
// ErrPermanent.
var ErrInvalidMessage = errors.New("invalid message")

// Failures that retrying cannot fix without a change of configuration.
var (
	errNoSTARTTLS     = errors.New(`server does not offer STARTTLS, which TLS "starttls" requires (use "starttls-opportunistic" or "none" to allow plain text)`)
	errAuthWithoutTLS = errors.New("server offers no STARTTLS: refusing to send the password in plain text")
	errNoAuthMech     = errors.New("server offers neither PLAIN nor LOGIN authentication")
)

// messageIDDomain is the right-hand side of Message-IDs made from an ID
// without one.
const messageIDDomain = "coinledger"

// Message is one email.
type Message struct {
	To      []string // at least one; "addr@example.com" or "Name <addr@example.com>"
	Subject string
	// Text and HTML are the body. With both the mail is
	// multipart/alternative; with neither it has an empty text body.
	Text, HTML string
	// ID is a stable id of the notification, sent as the Message-ID
	// "<ID@coinledger>" (or "<ID>" if ID has an @) so that a redelivery is
	// recognisable as the same mail. Letters, digits, and
	// !#$%&'*+-/=?^_`{|}~. only. Empty: a random Message-ID.
	ID string
	// Headers are extra header fields such as "X-Coinledger-Event". They
	// cannot replace From, Sender, To, Cc, Bcc, Subject, Date,
	// Message-ID, MIME-Version or Content-*.
	Headers map[string]string
}

// Sender sends email through one SMTP server. It is safe for concurrent
// use; every Send uses its own connection.
type Sender struct {
	cfg Config
}

// New checks cfg (see Config.Validate) and returns a Sender. It does no
// I/O.
func New(cfg Config) (*Sender, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Sender{cfg: cfg}, nil
}

// Send connects, authenticates if a username is configured, sends m and
// disconnects, all within Config.Timeout and ctx. The mail has been
// accepted by the server when Send returns nil.
//
// A failure wraps ErrTemporary when trying again later may work (the
// server is down or slow, a 4xx reply, ctx ended: then ctx's error is
// wrapped too) and ErrPermanent when it cannot (an invalid message, a 5xx
// reply such as a rejected recipient or failed authentication, a TLS
// setting or certificate the server does not match). Errors never contain
// the password.
func (s *Sender) Send(ctx context.Context, m Message) error {
	op := "email: send"
	if m.ID != "" {
		op += " " + strconv.Quote(m.ID)
	}
	msg, err := s.build(m)
	if err != nil {
		return fmt.Errorf("%s: %w: %w", op, ErrPermanent, err)
	}

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	sess := &session{ctx: ctx, cfg: &s.cfg}
	defer sess.close()
	if err := sess.send(msg); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("%s: %w: %w", op, ErrTemporary, ctxErr)
		}
		return fmt.Errorf("%s: %w: %s", op, classify(err), s.redact(err.Error()))
	}
	return nil
}

// redact removes the password from a driver's error text, should a
// server have echoed it.
func (s *Sender) redact(text string) string {
	if s.cfg.Password == "" {
		return text
	}
	return strings.ReplaceAll(text, s.cfg.Password.Reveal(), secret.Redacted)
}

// build turns m into a go-mail message.
func (s *Sender) build(m Message) (*mail.Msg, error) {
	if len(m.To) == 0 {
		return nil, fmt.Errorf("%w: no recipient", ErrInvalidMessage)
	}
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := msg.From(s.cfg.From); err != nil {
		return nil, fmt.Errorf("%w: from: %v", ErrInvalidMessage, err)
	}
	if err := msg.To(m.To...); err != nil {
		return nil, fmt.Errorf("%w: to: %v", ErrInvalidMessage, err)
	}
	msg.Subject(m.Subject)
	if m.ID != "" {
		id, err := messageID(m.ID)
		if err != nil {
			return nil, err
		}
		msg.SetMessageIDWithValue(id)
	}
	for name, value := range m.Headers {
		if err := checkHeader(name, value); err != nil {
			return nil, err
		}
		msg.SetGenHeader(mail.Header(name), value)
	}
	switch {
	case m.Text != "" && m.HTML != "":
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	case m.HTML != "":
		msg.SetBodyString(mail.TypeTextHTML, m.HTML)
	default:
		msg.SetBodyString(mail.TypeTextPlain, m.Text)
	}
	return msg, nil
}

// messageID returns the Message-ID, without angle brackets, for id.
func messageID(id string) (string, error) {
	left, right, hasAt := strings.Cut(id, "@")
	if !hasAt {
		right = messageIDDomain
	}
	if len(id) > 200 || !dotAtom(left) || !dotAtom(right) {
		return "", fmt.Errorf("%w: id %q cannot be a Message-ID", ErrInvalidMessage, id)
	}
	return left + "@" + right, nil
}

// dotAtom reports whether s is RFC 5322 dot-atom-text.
func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// reservedHeaders are set by Send itself.
var reservedHeaders = map[string]bool{
	"From": true, "To": true, "Cc": true, "Bcc": true, "Subject": true, "Date": true,
	"Message-Id": true, "Mime-Version": true, "Sender": true,
}

func checkHeader(name, value string) error {
	if name == "" {
		return fmt.Errorf("%w: empty header name", ErrInvalidMessage)
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] > '~' || name[i] == ':' {
			return fmt.Errorf("%w: header name %q", ErrInvalidMessage, name)
		}
	}
	canon := textproto.CanonicalMIMEHeaderKey(name)
	if reservedHeaders[canon] || strings.HasPrefix(canon, "Content-") {
		return fmt.Errorf("%w: header %s is set by the sender", ErrInvalidMessage, canon)
	}
	if strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("%w: header %s has a line break", ErrInvalidMessage, canon)
	}
	return nil
}

// session is one Send's connection.
type session struct {
	ctx  context.Context // bounds the whole session
	cfg  *Config
	conn net.Conn // the TCP connection, once dialled
	stop func() bool
}

// send delivers msg over a new connection.
func (ss *session) send(msg *mail.Msg) error {
	opts := []mail.Option{
		mail.WithPort(ss.cfg.Port),
		mail.WithTimeout(ss.cfg.Timeout),
		mail.WithDialContextFunc(ss.dial),
		mail.WithTLSConfig(ss.tlsConfig()),
	}
	switch ss.cfg.TLS {
	case TLSStartTLS, TLSStartTLSOpportunistic:
		// Mandatory STARTTLS is enforced below and by auth, so that its
		// failure is recognisable.
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
	default: // TLSImplicit (dial does the TLS) and TLSNone
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	}
	if ss.cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuthCustom(&auth{
			username:       ss.cfg.Username,
			password:       ss.cfg.Password.Reveal(),
			allowPlainText: ss.cfg.TLS == TLSNone,
			mandatoryTLS:   ss.cfg.TLS == TLSStartTLS,
		}))
	}
	client, err := mail.NewClient(ss.cfg.Host, opts...)
	if err != nil {
		return fmt.Errorf("set up client: %w", err)
	}
	conn, err := client.DialToSMTPClientWithContext(ss.ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	if ss.cfg.TLS == TLSStartTLS {
		if _, err := conn.GetTLSConnectionState(); err != nil {
			return fmt.Errorf("connect: %w", errNoSTARTTLS)
		}
	}
	if err := client.SendWithSMTPClient(conn, msg); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	// The server has the mail; a failing QUIT changes nothing.
	_ = client.CloseWithSMTPClient(conn)
	return nil
}

// dial connects to the server, does the TLS handshake for implicit TLS,
// and arranges for the connection to close when the session's context
// ends, which unblocks whatever go-mail is waiting for.
func (ss *session) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	ss.conn = conn
	ss.stop = context.AfterFunc(ss.ctx, func() { _ = conn.Close() })
	if ss.cfg.TLS != TLSImplicit {
		return conn, nil
	}
	tc := tls.Client(conn, ss.tlsConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return tc, nil
}

func (ss *session) tlsConfig() *tls.Config {
	return &tls.Config{
		ServerName:         ss.cfg.Host,
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: ss.cfg.InsecureSkipVerify, // for tests; see Config
	}
}

// close releases the connection, however far the session got.
func (ss *session) close() {
	if ss.stop != nil {
		ss.stop()
	}
	if ss.conn != nil {
		_ = ss.conn.Close()
	}
}

// auth authenticates with PLAIN, or LOGIN if the server offers only that.
// It sends the password only over TLS unless allowPlainText.
type auth struct {
	username, password string
	allowPlainText     bool
	mandatoryTLS       bool      // for a clearer error when TLS is missing
	mech               smtp.Auth // chosen by Start
}

func (a *auth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !a.allowPlainText {
		if a.mandatoryTLS {
			return "", nil, errNoSTARTTLS
		}
		return "", nil, errAuthWithoutTLS
	}
	has := func(mech string) bool {
		for _, m := range server.Auth {
			if strings.EqualFold(m, mech) {
				return true
			}
		}
		return false
	}
	switch {
	case has("PLAIN"):
		a.mech = smtp.PlainAuth("", a.username, a.password, server.Name, true)
	case has("LOGIN"):
		a.mech = smtp.LoginAuth(a.username, a.password, server.Name, true)
	default:
		return "", nil, errNoAuthMech
	}
	return a.mech.Start(server)
}

func (a *auth) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.mech.Next(fromServer, more)
}

// classify says whether err, from go-mail or the network, is worth
// retrying.
func classify(err error) error {
	if errors.Is(err, errNoSTARTTLS) || errors.Is(err, errAuthWithoutTLS) || errors.Is(err, errNoAuthMech) {
		return ErrPermanent
	}
	var sendErr *mail.SendError
	if errors.As(err, &sendErr) {
		switch {
		case sendErr.IsTemp():
			return ErrTemporary
		case sendErr.ErrorCode() >= 500,
			sendErr.Reason == mail.ErrGetSender, sendErr.Reason == mail.ErrGetRcpts,
			sendErr.Reason == mail.ErrNoUnencoded:
			return ErrPermanent
		default: // the connection broke during the transfer
			return ErrTemporary
		}
	}
	var reply *textproto.Error
	if errors.As(err, &reply) {
		if reply.Code >= 500 {
			return ErrPermanent
		}
		return ErrTemporary
	}
	var (
		verifyErr   *tls.CertificateVerificationError
		recordErr   tls.RecordHeaderError
		alertErr    tls.AlertError
		unknownCA   x509.UnknownAuthorityError
		hostnameErr x509.HostnameError
		invalidErr  x509.CertificateInvalidError
	)
	if errors.As(err, &verifyErr) || errors.As(err, &recordErr) || errors.As(err, &alertErr) ||
		errors.As(err, &unknownCA) || errors.As(err, &hostnameErr) || errors.As(err, &invalidErr) {
		return ErrPermanent
	}
	// Refused or lost connections, timeouts, and whatever else: try again.
	return ErrTemporary
}
