package auth

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// ClientIP finds the address of the client behind a request. Only the
// direct peer is known for certain; X-Forwarded-For is believed only as far
// as it was written by proxies the operator trusts.
type ClientIP struct {
	trusted []netip.Prefix
}

// NewClientIP returns a ClientIP trusting the given proxies, each an
// address ("10.0.0.1", "::1") or a CIDR prefix ("10.0.0.0/8"). No proxies
// means X-Forwarded-For is always ignored. An invalid entry is an error
// naming it.
func NewClientIP(trustedProxies []string) (*ClientIP, error) {
	c := &ClientIP{}
	var errs []error
	for _, s := range trustedProxies {
		p, err := parseNet(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("trusted proxy %q: %w", s, err))
			continue
		}
		c.trusted = append(c.trusted, p)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("auth: %w", errors.Join(errs...))
	}
	return c, nil
}

// Of returns the client address of a request with the given RemoteAddr
// ("ip:port", "[ipv6]:port" or a bare address) and X-Forwarded-For header
// values. It is the peer itself unless the peer is a trusted proxy; then
// X-Forwarded-For (all values, in order, as one comma-separated list) is
// walked from the right, past trusted proxies, to the first untrusted
// address. A malformed entry stops the walk at the last good hop: nothing
// left of it is believed. When every hop is trusted, the leftmost is the
// answer.
//
// Addresses come back unmapped (::ffff:192.0.2.1 is 192.0.2.1) and without
// an IPv6 zone. Only an unparseable RemoteAddr is an error.
func (c *ClientIP) Of(remoteAddr string, xForwardedFor []string) (netip.Addr, error) {
	peer, ok := parseHop(remoteAddr)
	if !ok {
		return netip.Addr{}, fmt.Errorf("auth: client address: remote address %q is not ip[:port]", remoteAddr)
	}
	if !c.trusts(peer) {
		return peer, nil
	}
	last := peer
	for i := len(xForwardedFor) - 1; i >= 0; i-- {
		list := xForwardedFor[i]
		if strings.TrimSpace(list) == "" {
			continue // an empty header line lists no hops
		}
		for {
			comma := strings.LastIndexByte(list, ',')
			hop, ok := parseHop(list[comma+1:])
			if !ok {
				return last, nil
			}
			if !c.trusts(hop) {
				return hop, nil
			}
			last = hop
			if comma < 0 {
				break
			}
			list = list[:comma]
		}
	}
	return last, nil
}

func (c *ClientIP) trusts(a netip.Addr) bool {
	if c == nil {
		return false
	}
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Allowed reports whether addr matches an allowlist of addresses and CIDR
// prefixes (a wallet's ip_allowlist). An empty allowlist allows every
// address; otherwise an invalid addr matches nothing. Entries are meant to
// be validated when stored; an invalid one here matches nothing.
func Allowed(allowlist []string, addr netip.Addr) bool {
	if len(allowlist) == 0 {
		return true
	}
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return false
	}
	for _, s := range allowlist {
		if p, err := parseNet(s); err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

// ValidateNet returns nil when s is an address or CIDR prefix that Allowed
// and NewClientIP accept, and the reason otherwise; use it to validate an
// allowlist before storing it.
func ValidateNet(s string) error {
	_, err := parseNet(s)
	return err
}

// parseNet parses an address (a single-address prefix) or a CIDR prefix,
// masking host bits and unmapping IPv4-mapped IPv6 forms.
func parseNet(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Prefix{}, errors.New("empty")
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, errors.New("not a CIDR prefix")
		}
		if a := p.Addr(); a.Is4In6() {
			if p.Bits() < 96 {
				return netip.Prefix{}, errors.New("IPv4-mapped prefix shorter than /96")
			}
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, errors.New("not an address or CIDR prefix")
	}
	if a.Zone() != "" {
		return netip.Prefix{}, errors.New("zoned address")
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// parseHop parses one address as found in RemoteAddr or X-Forwarded-For:
// "192.0.2.1", "192.0.2.1:80", "2001:db8::1", "[2001:db8::1]" or
// "[2001:db8::1]:80", with optional surrounding spaces or tabs.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.Trim(s, " \t")
	var a netip.Addr
	if rest, ok := strings.CutPrefix(s, "["); ok {
		if inner, ok := strings.CutSuffix(rest, "]"); ok {
			a, _ = netip.ParseAddr(inner)
			if !a.Is6() {
				return netip.Addr{}, false
			}
		} else if ap, err := netip.ParseAddrPort(s); err == nil {
			a = ap.Addr()
		}
	} else if x, err := netip.ParseAddr(s); err == nil {
		a = x
	} else if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Is4() {
		a = ap.Addr()
	}
	if !a.IsValid() {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}
