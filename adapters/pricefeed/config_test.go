package pricefeed_test

import (
	"strings"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/pricefeed"
	"gopkg.in/yaml.v3"
)

// The configs embed in the service's YAML config: durations as "30s",
// header values that never print back.
func TestConfigYAML(t *testing.T) {
	t.Parallel()
	const doc = `
pollers:
  - preset: coingecko
    pairs: [BTC/USD, ETH/USD]
    interval: 45s
    headers: {x-cg-demo-api-key: CG-secret}
  - name: rates
    pairs: [BTC/USD]
    url: https://example.com/v1/{base}/{quote}
    price_path: data.rates.0.price
    time_path: data.rates.0.ts
    time_format: unix_ms
streams:
  - name: binance-ws
    url: wss://stream.binance.com:9443/ws
    subscribe: ['{"method":"SUBSCRIBE","params":["btcusdt@trade"],"id":1}']
    symbols: {BTCUSDT: BTC/USD}
    symbol_path: s
    price_path: p
    time_path: T
    max_backoff: 2m
`
	var cfg struct {
		Pollers []pricefeed.PollerConfig `yaml:"pollers"`
		Streams []pricefeed.StreamConfig `yaml:"streams"`
	}
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Pollers) != 2 || len(cfg.Streams) != 1 {
		t.Fatalf("decoded %+v", cfg)
	}
	if cfg.Pollers[0].Interval != 45*time.Second || cfg.Streams[0].MaxBackoff != 2*time.Minute {
		t.Errorf("durations: %s, %s", cfg.Pollers[0].Interval, cfg.Streams[0].MaxBackoff)
	}
	if cfg.Pollers[0].Headers["x-cg-demo-api-key"].Reveal() != "CG-secret" {
		t.Errorf("header value not decoded")
	}
	for _, p := range cfg.Pollers {
		if err := p.Validate(); err != nil {
			t.Error(err)
		}
	}
	if err := cfg.Streams[0].Validate(); err != nil {
		t.Error(err)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "CG-secret") || !strings.Contains(string(out), "[redacted]") {
		t.Errorf("marshalled config shows the secret:\n%s", out)
	}
}
