package egress_test

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/coinledger/coinledger/domain/egress"
)

func TestCheckAddrForbiddenClasses(t *testing.T) {
	for _, tt := range []struct {
		addr  string
		class string // "" allowed
	}{
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"10.0.0.1", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"::ffff:192.168.1.1", "private"},
		{"::ffff:10.1.2.3", "private"},
		{"fc00::1", "unique local"},
		{"fd12:3456::1", "unique local"},
		{"169.254.169.254", "link-local"}, // cloud metadata
		{"::ffff:169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "unspecified"},
		{"::", "unspecified"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"ff02::1", "multicast"},
		{"100.64.0.1", "shared (CGNAT)"},
		{"100.127.255.255", "shared (CGNAT)"},
		{"255.255.255.255", "reserved"},
		{"240.0.0.1", "reserved"},
		{"192.0.2.1", "documentation"},
		{"2001:db8::1", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"::127.0.0.1", "IPv4-compatible"},
		{"64:ff9b::7f00:1", "loopback"},      // NAT64 of 127.0.0.1
		{"64:ff9b::a9fe:a9fe", "link-local"}, // NAT64 of 169.254.169.254
		{"2002:c0a8:0101::1", "private"},     // 6to4 of 192.168.1.1
		{"2001::1", "Teredo"},
		// Public addresses.
		{"93.184.216.34", ""},
		{"1.1.1.1", ""},
		{"100.63.255.255", ""},
		{"172.32.0.1", ""},
		{"2606:4700:4700::1111", ""},
		{"::ffff:8.8.8.8", ""},
		{"64:ff9b::808:808", ""}, // NAT64 of 8.8.8.8
	} {
		t.Run(tt.addr, func(t *testing.T) {
			err := egress.Policy{}.CheckAddr(netip.MustParseAddr(tt.addr))
			if tt.class == "" {
				if err != nil {
					t.Fatalf("CheckAddr(%s) = %v, want allowed", tt.addr, err)
				}
				return
			}
			if !errors.Is(err, egress.ErrForbidden) {
				t.Fatalf("CheckAddr(%s) = %v, want ErrForbidden", tt.addr, err)
			}
			if want := tt.class + " address"; !strings.Contains(err.Error(), want) {
				t.Fatalf("CheckAddr(%s) = %v, want it to name %q", tt.addr, err, want)
			}
		})
	}
}

func TestCheckAddrAllowlist(t *testing.T) {
	allow, err := egress.ParseAllow([]string{"10.1.0.0/16", "127.0.0.1", "::ffff:192.168.7.0/120"})
	if err != nil {
		t.Fatal(err)
	}
	p := egress.Policy{Allow: allow}
	for addr, ok := range map[string]bool{
		"10.1.2.3":           true,
		"::ffff:10.1.2.3":    true,
		"10.2.0.1":           false,
		"127.0.0.1":          true,
		"127.0.0.2":          false,
		"192.168.7.9":        true,
		"192.168.8.1":        false,
		"169.254.169.254":    false,
		"64:ff9b::a01:203":   true, // NAT64 of allowlisted 10.1.2.3
		"64:ff9b::a02:1":     false,
		"2606:4700:4700::11": true,
	} {
		err := p.CheckAddr(netip.MustParseAddr(addr))
		if ok != (err == nil) {
			t.Errorf("CheckAddr(%s) = %v, want allowed %v", addr, err, ok)
		}
	}
}

func TestParseAllowRejects(t *testing.T) {
	for _, s := range []string{"", "10.0.0.0/33", "example.com", "10.0.0.0/8/8", "fe80::1%eth0", "::ffff:0.0.0.0/64"} {
		if _, err := egress.ParseAllow([]string{s}); err == nil {
			t.Errorf("ParseAllow(%q) accepted", s)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, tt := range []struct {
		url       string
		allowHTTP bool
		name      string // host left to resolve
		forbidden bool
	}{
		{url: "https://hooks.example.com/x", name: "hooks.example.com"},
		{url: "https://hooks.example.com:8443/x?y=1", name: "hooks.example.com"},
		{url: "http://hooks.example.com/x", forbidden: true},
		{url: "http://hooks.example.com/x", allowHTTP: true, name: "hooks.example.com"},
		{url: "ftp://hooks.example.com/x", forbidden: true},
		{url: "gopher://hooks.example.com/x", allowHTTP: true, forbidden: true},
		{url: "file:///etc/passwd", forbidden: true},
		{url: "https://user:pw@hooks.example.com/x", forbidden: true},
		{url: "https://user@hooks.example.com/x", forbidden: true},
		{url: "https:///x", forbidden: true},
		{url: "https://127.0.0.1/x", forbidden: true},
		{url: "https://[::1]:8080/x", forbidden: true},
		{url: "https://[::ffff:169.254.169.254]/x", forbidden: true},
		{url: "https://[fe80::1%25eth0]/x", forbidden: true},
		{url: "https://93.184.216.34/x"},
		{url: "https://[2606:4700:4700::1111]/x"},
	} {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		name, err := egress.Policy{AllowHTTP: tt.allowHTTP}.CheckURL(u)
		if tt.forbidden != errors.Is(err, egress.ErrForbidden) || (!tt.forbidden && err != nil) {
			t.Errorf("CheckURL(%s) = %v, want forbidden %v", tt.url, err, tt.forbidden)
		}
		if name != tt.name {
			t.Errorf("CheckURL(%s) name %q, want %q", tt.url, name, tt.name)
		}
	}
}

func TestCheckDial(t *testing.T) {
	p := egress.Policy{}
	for addr, ok := range map[string]bool{
		"127.0.0.1:80":              false,
		"[::1]:443":                 false,
		"[::ffff:127.0.0.1]:443":    false,
		"169.254.169.254:80":        false,
		"93.184.216.34:443":         true,
		"[2606:4700:4700::1111]:53": true,
		"localhost:80":              false, // not an address: refused
		"93.184.216.34":             false, // no port
	} {
		err := p.CheckDial("tcp", addr)
		if ok != (err == nil) || (err != nil && !errors.Is(err, egress.ErrForbidden)) {
			t.Errorf("CheckDial(%s) = %v, want allowed %v", addr, err, ok)
		}
	}
}
