// Package egress is the rule for where the service may send requests on a
// user's behalf (alert webhooks): never to the machine itself, its private
// networks or cloud metadata services, unless the operator allowlists them.
//
// One Policy is used twice: when a webhook is set up (the URL, and every
// address its host resolves to) and when it is delivered (the address the
// connection is actually made to, so a name that resolves differently
// later, DNS rebinding, gains nothing). Pure: no I/O but the look-up
// CheckHost makes through the caller's Resolver.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// ErrForbidden: the target is not one the service may send to. Errors of
// this package wrap it.
var ErrForbidden = errors.New("webhook target forbidden")

// Policy says which targets are allowed. The zero value allows https to
// public addresses only.
type Policy struct {
	// AllowHTTP allows plain http URLs besides https.
	AllowHTTP bool
	// Allow lists ranges that are allowed even though they are in a
	// forbidden class (an operator's internal receivers). An address is
	// compared in its IPv4 form when it is IPv4-mapped IPv6.
	Allow []netip.Prefix
}

// forbidden are the address classes no webhook may reach unless allowlisted.
var forbidden = []struct {
	prefix netip.Prefix
	class  string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "reserved"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"}, // includes broadcast 255.255.255.255
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64"},
	{netip.MustParsePrefix("100::/64"), "discard"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("fc00::/7"), "unique local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// Embedding prefixes: IPv6 ranges whose addresses carry an IPv4 address
// the packets end up at; that one is checked too.
var (
	nat64  = netip.MustParsePrefix("64:ff9b::/96") // IPv4 in the last 32 bits
	sixTo4 = netip.MustParsePrefix("2002::/16")    // IPv4 in bits 16..47
)

// CheckAddr returns nil when a may be sent to, else an error wrapping
// ErrForbidden that names a's class.
func (p Policy) CheckAddr(a netip.Addr) error {
	if !a.IsValid() {
		return fmt.Errorf("%w: no address", ErrForbidden)
	}
	a = a.WithZone("").Unmap()
	for _, allow := range p.Allow {
		if allow.Contains(a) {
			return nil
		}
	}
	if class := classOf(a); class != "" {
		return fmt.Errorf("%w: %s is a %s address", ErrForbidden, a, class)
	}
	if a.Is6() {
		b := a.As16()
		var v4 netip.Addr
		switch {
		case nat64.Contains(a):
			v4 = netip.AddrFrom4([4]byte(b[12:16]))
		case sixTo4.Contains(a):
			v4 = netip.AddrFrom4([4]byte(b[2:6]))
		}
		if v4.IsValid() {
			if err := p.CheckAddr(v4); err != nil {
				return fmt.Errorf("%s embeds %w", a, err)
			}
		}
	}
	return nil
}

// classOf returns the forbidden class of a, "" for a public address.
func classOf(a netip.Addr) string {
	for _, f := range forbidden {
		if f.prefix.Contains(a) {
			return f.class
		}
	}
	return ""
}

// CheckDial checks the address a connection is about to be made to, as
// net.Dialer.Control passes it ("ip:port"). Anything but an IP literal is
// refused.
func (p Policy) CheckDial(network, address string) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return fmt.Errorf("%w: dial %s %q: %v", ErrForbidden, network, address, err)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: dial %s %q: not an IP address", ErrForbidden, network, address)
	}
	return p.CheckAddr(a)
}

// CheckURL checks what can be checked of u without resolving its host:
// the scheme (https, or http when AllowHTTP), no user info, a host, and,
// when the host is an IP literal, the address. It returns the host name
// the caller must resolve and check address by address with CheckAddr, or
// "" when the host is an IP literal.
func (p Policy) CheckURL(u *url.URL) (name string, err error) {
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && p.AllowHTTP:
	case u.Scheme == "http":
		return "", fmt.Errorf("%w: http is not allowed, use https", ErrForbidden)
	default:
		return "", fmt.Errorf("%w: scheme %q, want https", ErrForbidden, u.Scheme)
	}
	if u.User != nil {
		return "", fmt.Errorf("%w: the URL has user info", ErrForbidden)
	}
	host := u.Hostname()
	if host == "" {
		return "", fmt.Errorf("%w: the URL has no host", ErrForbidden)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return "", p.CheckAddr(a)
	}
	if strings.ContainsAny(host, "%[]") {
		return "", fmt.Errorf("%w: host %q is not a name", ErrForbidden, host)
	}
	return host, nil
}

// Resolver looks up the addresses of a host name; *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// resolveTimeout bounds CheckHost's look-up.
const resolveTimeout = 5 * time.Second

// CheckHost resolves a host name CheckURL returned ("": nothing to check)
// with r, the caller's I/O, bounded to 5 s, and checks what it gives: it
// fails closed when the look-up fails or finds no address, and refuses the
// name when p forbids any of its addresses.
func (p Policy) CheckHost(ctx context.Context, r Resolver, host string) error {
	if host == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Errorf("%w: host %q does not resolve", ErrForbidden, host)
	}
	for _, a := range addrs {
		if err := p.CheckAddr(a); err != nil {
			return fmt.Errorf("host %q: %w", host, err)
		}
	}
	return nil
}

// ParseAllow parses an allowlist: CIDR ranges ("10.1.0.0/16") or single
// addresses. IPv4-mapped IPv6 ranges are taken as their IPv4 ranges.
func ParseAllow(ranges []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, s := range ranges {
		pf, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil || a.Zone() != "" {
				errs = append(errs, fmt.Errorf("%q: want a CIDR range such as 10.1.0.0/16", s))
				continue
			}
			pf = netip.PrefixFrom(a, a.BitLen())
		}
		if a := pf.Addr(); a.Is4In6() {
			bits := pf.Bits() - 96
			if bits < 0 {
				errs = append(errs, fmt.Errorf("%q: an IPv4-mapped range needs at least /96", s))
				continue
			}
			pf = netip.PrefixFrom(a.Unmap(), bits)
		}
		out = append(out, pf.Masked())
	}
	return out, errors.Join(errs...)
}
