package main

import (
	"strings"
	"testing"
)

// TestValidateWebhookAllowCIDRs: notify.webhooks.allow_cidrs takes CIDR
// ranges and single addresses; anything else is a configuration error
// naming the key.
func TestValidateWebhookAllowCIDRs(t *testing.T) {
	for _, tt := range []struct {
		cidrs []string
		ok    bool
	}{
		{nil, true},
		{[]string{"10.1.0.0/16", "127.0.0.0/8", "::1/128", "192.168.1.7"}, true},
		{[]string{"10.1.0.0/33"}, false},
		{[]string{"internal.example.com"}, false},
		{[]string{"10.0.0.0/8", ""}, false},
	} {
		c := Config{Notify: NotifyConfig{Webhooks: WebhooksConfig{AllowCIDRs: tt.cidrs}}}
		c.setDefaults()
		err := c.Validate()
		if tt.ok != (err == nil) || (err != nil && !strings.Contains(err.Error(), "notify.webhooks.allow_cidrs")) {
			t.Errorf("allow_cidrs %q: %v, want ok %v", tt.cidrs, err, tt.ok)
		}
	}
}
