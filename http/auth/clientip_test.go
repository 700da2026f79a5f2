package auth

import (
	"net/netip"
	"strings"
	"testing"
)

func mustClientIP(tb testing.TB, trusted ...string) *ClientIP {
	tb.Helper()
	c, err := NewClientIP(trusted)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func TestNewClientIPErrors(t *testing.T) {
	for _, bad := range []string{"", "proxy.example", "10.0.0.300", "10.0.0.0/33", "fe80::1%eth0",
		"10.0.0.1:80", "::ffff:10.0.0.0/80", "10.0.0.0/8/8"} {
		_, err := NewClientIP([]string{"10.0.0.1", bad})
		if err == nil {
			t.Errorf("%q accepted", bad)
			continue
		}
		if !strings.Contains(err.Error(), `"`+bad+`"`) {
			t.Errorf("error %q does not name %q", err, bad)
		}
	}
	// Every bad entry is reported at once.
	_, err := NewClientIP([]string{"x", "10.0.0.1", "y"})
	if err == nil || !strings.Contains(err.Error(), `"x"`) || !strings.Contains(err.Error(), `"y"`) {
		t.Errorf("want both entries named: %v", err)
	}
	for _, good := range []string{"10.0.0.1", "10.1.2.3/8", "2001:db8::/32", "::1", " 192.0.2.0/24 ",
		"::ffff:10.0.0.0/104", "::ffff:10.0.0.1"} {
		if err := ValidateNet(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}

func TestClientIPOf(t *testing.T) {
	proxies := mustClientIP(t, "10.0.0.0/8", "2001:db8:ffff::/48", "192.0.2.10")
	none := mustClientIP(t)
	for _, tc := range []struct {
		name   string
		c      *ClientIP
		remote string
		xff    []string
		want   string
	}{
		{"direct ipv4", proxies, "203.0.113.7:5555", nil, "203.0.113.7"},
		{"direct ipv6", proxies, "[2001:db8:1::7]:443", nil, "2001:db8:1::7"},
		{"direct zone dropped", proxies, "[fe80::1%eth0]:443", nil, "fe80::1"},
		{"direct mapped", proxies, "[::ffff:203.0.113.7]:80", nil, "203.0.113.7"},
		{"direct no port", proxies, "203.0.113.7", nil, "203.0.113.7"},
		{"spoof from untrusted peer", proxies, "203.0.113.7:1", []string{"127.0.0.1"}, "203.0.113.7"},
		{"spoof with no proxies configured", none, "10.0.0.1:1", []string{"198.51.100.1"}, "10.0.0.1"},
		{"nil ClientIP", nil, "10.0.0.1:1", []string{"198.51.100.1"}, "10.0.0.1"},
		{"one proxy", proxies, "10.0.0.1:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client spoofs left part", proxies, "10.0.0.1:1", []string{"127.0.0.1, 1.2.3.4, 198.51.100.1"},
			"198.51.100.1"},
		{"chain of proxies", proxies, "10.0.0.1:1", []string{"198.51.100.1, 10.9.9.9,192.0.2.10"},
			"198.51.100.1"},
		{"several header lines", proxies, "10.0.0.1:1", []string{"6.6.6.6, 198.51.100.1", "10.1.1.1"},
			"198.51.100.1"},
		{"empty header line skipped", proxies, "10.0.0.1:1", []string{"198.51.100.1", "  "}, "198.51.100.1"},
		{"no header from proxy", proxies, "10.0.0.1:1", nil, "10.0.0.1"},
		{"all trusted: leftmost", proxies, "10.0.0.1:1", []string{"10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		{"malformed rightmost", proxies, "10.0.0.1:1", []string{"198.51.100.1, garbage"}, "10.0.0.1"},
		{"malformed after trusted hop", proxies, "10.0.0.1:1", []string{"6.6.6.6, unknown, 10.0.0.2"},
			"10.0.0.2"},
		{"blank element stops the walk", proxies, "10.0.0.1:1",
			[]string{"198.51.100.1", "10.0.0.7, ,10.0.0.2"}, "10.0.0.2"},
		{"trailing comma", proxies, "10.0.0.1:1", []string{"198.51.100.1,"}, "10.0.0.1"},
		{"xff ipv6", proxies, "[2001:db8:ffff::1]:1", []string{"2001:db8:1::7"}, "2001:db8:1::7"},
		{"xff ipv6 brackets and port", proxies, "10.0.0.1:1", []string{"[2001:db8:1::7]:8443"},
			"2001:db8:1::7"},
		{"xff ipv6 brackets", proxies, "10.0.0.1:1", []string{"[2001:db8:1::7]"}, "2001:db8:1::7"},
		{"xff ipv4 port", proxies, "10.0.0.1:1", []string{"198.51.100.1:4711"}, "198.51.100.1"},
		{"xff bracketed ipv4 malformed", proxies, "10.0.0.1:1", []string{"[198.51.100.1]"}, "10.0.0.1"},
		{"xff zone dropped", proxies, "10.0.0.1:1", []string{"fe80::9%eth0"}, "fe80::9"},
		{"xff bad zone", proxies, "10.0.0.1:1", []string{"fe80::9%"}, "10.0.0.1"},
		{"xff mapped", proxies, "10.0.0.1:1", []string{"::ffff:198.51.100.1"}, "198.51.100.1"},
		{"xff mapped trusted proxy", proxies, "10.0.0.1:1", []string{"198.51.100.1, ::ffff:10.0.0.9"},
			"198.51.100.1"},
		{"peer mapped trusted", proxies, "[::ffff:10.0.0.1]:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"tabs trimmed", proxies, "10.0.0.1:1", []string{"\t198.51.100.1\t"}, "198.51.100.1"},
		{"rfc 7239 syntax is malformed", proxies, "10.0.0.1:1", []string{"for=198.51.100.1"}, "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.c.Of(tc.remote, tc.xff)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestClientIPOfBadRemote(t *testing.T) {
	c := mustClientIP(t, "10.0.0.0/8")
	for _, remote := range []string{"", "@", "pipe", "10.0.0.1:", "[10.0.0.1]:80", "[::1", "::1]:80"} {
		if a, err := c.Of(remote, []string{"198.51.100.1"}); err == nil {
			t.Errorf("%q: got %s, want an error", remote, a)
		}
	}
}

func TestAllowed(t *testing.T) {
	list := []string{"10.0.0.0/8", "127.0.0.1", "2001:db8::/32", "::ffff:192.0.2.0/120", "not an ip", ""}
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"10.1.2.3", true},
		{"11.0.0.1", false},
		{"127.0.0.1", true},
		{"127.0.0.2", false},
		{"::ffff:10.0.0.1", true},
		{"2001:db8:5::1", true},
		{"2001:db9::1", false},
		{"fe80::1%eth0", false},
		{"2001:db8::1%eth0", true},
		{"192.0.2.200", true},
		{"192.0.3.1", false},
	} {
		if got := Allowed(list, netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Allowed(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if Allowed(list, netip.Addr{}) {
		t.Error("the zero address is allowed")
	}
	if !Allowed(nil, netip.MustParseAddr("203.0.113.1")) {
		t.Error("an empty allowlist refuses")
	}
	if Allowed([]string{"garbage", "/", "1.2.3.4/99"}, netip.MustParseAddr("1.2.3.4")) {
		t.Error("invalid entries match")
	}
}

func FuzzClientIPOf(f *testing.F) {
	c := mustClientIP(f, "10.0.0.0/8", "::1")
	f.Add("10.0.0.1:1", "198.51.100.1, 10.0.0.2")
	f.Add("[::1]:80", "[2001:db8::1]:80,,fe80::1%eth0")
	f.Fuzz(func(t *testing.T, remote, xff string) {
		a, err := c.Of(remote, []string{xff})
		if err != nil {
			return
		}
		if !a.IsValid() || a.Zone() != "" || a.Is4In6() {
			t.Fatalf("Of(%q, %q) = %v", remote, xff, a)
		}
		peer, _ := c.Of(remote, nil)
		if !c.trusts(peer) && a != peer {
			t.Fatalf("untrusted peer %s, got %s", peer, a)
		}
	})
}
