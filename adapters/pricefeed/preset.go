package pricefeed

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
)

// Default hosts of the presets.
var presetHosts = map[string]string{
	"coingecko": "https://api.coingecko.com",
	"binance":   "https://api.binance.com",
	"coinbase":  "https://api.coinbase.com",
}

// DefaultCoinGeckoIDs are the CoinGecko coin ids of base symbols the
// coingecko preset knows without configuration.
func DefaultCoinGeckoIDs() map[string]string {
	return map[string]string{"BTC": "bitcoin", "ETH": "ethereum", "LTC": "litecoin", "DOGE": "dogecoin"}
}

// DefaultBinanceQuotes maps quote symbols to the symbols Binance quotes in,
// for the binance preset.
func DefaultBinanceQuotes() map[string]string { return map[string]string{"USD": "USDT"} }

// preset returns the requests of a preset for pairs.
func (c PollerConfig) preset(pairs []prices.Pair) ([]request, []error) {
	var errs []error
	if c.URL != "" || c.PricePath != "" || c.TimePath != "" {
		errs = append(errs, errors.New("url, price_path and time_path belong to a generic definition, not a preset"))
	}
	if c.Preset != "coingecko" && len(c.CoinGeckoIDs) > 0 {
		errs = append(errs, errors.New("coingecko_ids: only for preset coingecko"))
	}
	if c.Preset != "binance" && len(c.BinanceQuotes) > 0 {
		errs = append(errs, errors.New("binance_quotes: only for preset binance"))
	}
	base := presetHosts[c.Preset]
	if c.BaseURL != "" {
		if err := checkURL(c.BaseURL.Reveal(), "http", "https"); err != nil {
			errs = append(errs, fmt.Errorf("base_url: %w", err))
		} else if u, _ := url.Parse(c.BaseURL.Reveal()); u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, errors.New("base_url: want no query or fragment"))
		}
		base = c.BaseURL.Reveal()
	}
	base = strings.TrimRight(base, "/")
	var reqs []request
	var rerrs []error
	switch c.Preset {
	case "coingecko":
		reqs, rerrs = coingecko(base, pairs, c.CoinGeckoIDs)
	case "binance":
		reqs, rerrs = binance(base, pairs, c.BinanceQuotes)
	case "coinbase":
		reqs = coinbase(base, pairs)
	}
	return reqs, append(errs, rerrs...)
}

// coingecko reads every pair in one request:
// GET /api/v3/simple/price?ids=bitcoin,ethereum&vs_currencies=usd,eur&precision=full&include_last_updated_at=true
// answers {"bitcoin":{"usd":97123.45,"eur":…,"last_updated_at":1718000000},…}.
func coingecko(base string, pairs []prices.Pair, extra map[string]string) ([]request, []error) {
	var errs []error
	ids := DefaultCoinGeckoIDs()
	for sym, id := range extra {
		s := strings.ToUpper(sym)
		if s == "" || id == "" || strings.ContainsAny(id, ", \t\r\n") {
			errs = append(errs, fmt.Errorf("coingecko_ids: %q: %q: want a symbol and a coin id", clip(sym), clip(id)))
			continue
		}
		ids[s] = id
	}
	var idList, vsList []string
	for _, p := range pairs {
		id, ok := ids[p.Base()]
		if !ok {
			errs = append(errs, fmt.Errorf("coingecko_ids: no coin id for %s (pair %s)", p.Base(), p))
			continue
		}
		idList = append(idList, id)
		vsList = append(vsList, strings.ToLower(p.Quote()))
	}
	if len(errs) > 0 || len(pairs) == 0 {
		return nil, errs
	}
	slices.Sort(idList)
	slices.Sort(vsList)
	q := url.Values{}
	q.Set("ids", strings.Join(slices.Compact(idList), ","))
	q.Set("vs_currencies", strings.Join(slices.Compact(vsList), ","))
	q.Set("precision", "full")
	q.Set("include_last_updated_at", "true")
	read := func(body []byte, p prices.Pair) (prices.Price, time.Time, error) {
		id := ids[p.Base()]
		raw, err := path{id, strings.ToLower(p.Quote())}.lookup(body)
		if err != nil {
			return prices.Price{}, time.Time{}, err
		}
		price, err := decodePrice(raw)
		if err != nil {
			return prices.Price{}, time.Time{}, err
		}
		raw, err = path{id, "last_updated_at"}.lookup(body)
		if errors.Is(err, ErrNoValue) {
			return price, time.Time{}, nil
		}
		if err != nil {
			return prices.Price{}, time.Time{}, err
		}
		at, err := decodeTime(raw, TimeUnix)
		return price, at, err
	}
	return []request{{url: base + "/api/v3/simple/price?" + q.Encode(), pairs: pairs, read: read}}, nil
}

// binance reads each pair with GET /api/v3/ticker/price?symbol=BTCUSDT,
// which answers {"symbol":"BTCUSDT","price":"97123.45000000"}.
func binance(base string, pairs []prices.Pair, extra map[string]string) ([]request, []error) {
	var errs []error
	quotes := DefaultBinanceQuotes()
	for q, b := range extra {
		qq, bq := strings.ToUpper(q), strings.ToUpper(b)
		if !isSymbol(qq) || !isSymbol(bq) {
			errs = append(errs, fmt.Errorf("binance_quotes: %q: %q: want two symbols", clip(q), clip(b)))
			continue
		}
		quotes[qq] = bq
	}
	reqs := make([]request, 0, len(pairs))
	for _, p := range pairs {
		quote := p.Quote()
		if q, ok := quotes[quote]; ok {
			quote = q
		}
		symbol := p.Base() + quote
		read := func(body []byte, p prices.Pair) (prices.Price, time.Time, error) {
			raw, err := path{"symbol"}.lookup(body)
			if err == nil {
				if s, _, err := scalar(raw); err != nil || s != symbol {
					return prices.Price{}, time.Time{}, fmt.Errorf("%w: answer for symbol %s, want %s", ErrMalformed, snippet(raw), symbol)
				}
			} else if !errors.Is(err, ErrNoValue) {
				return prices.Price{}, time.Time{}, err
			}
			raw, err = path{"price"}.lookup(body)
			if err != nil {
				return prices.Price{}, time.Time{}, err
			}
			price, err := decodePrice(raw)
			return price, time.Time{}, err
		}
		reqs = append(reqs, request{
			url:   base + "/api/v3/ticker/price?symbol=" + url.QueryEscape(symbol),
			pairs: []prices.Pair{p},
			read:  read,
		})
	}
	return reqs, errs
}

// coinbase reads each pair with GET /v2/prices/BTC-USD/spot, which answers
// {"data":{"amount":"97123.45","base":"BTC","currency":"USD"}}.
func coinbase(base string, pairs []prices.Pair) []request {
	reqs := make([]request, 0, len(pairs))
	for _, p := range pairs {
		read := func(body []byte, p prices.Pair) (prices.Price, time.Time, error) {
			for _, f := range []struct{ key, want string }{{"base", p.Base()}, {"currency", p.Quote()}} {
				raw, err := path{"data", f.key}.lookup(body)
				if errors.Is(err, ErrNoValue) {
					continue
				}
				if err != nil {
					return prices.Price{}, time.Time{}, err
				}
				if s, _, err := scalar(raw); err != nil || !strings.EqualFold(s, f.want) {
					return prices.Price{}, time.Time{}, fmt.Errorf("%w: data.%s is %s, want %s", ErrMalformed, f.key, snippet(raw), f.want)
				}
			}
			raw, err := path{"data", "amount"}.lookup(body)
			if err != nil {
				return prices.Price{}, time.Time{}, err
			}
			price, err := decodePrice(raw)
			return price, time.Time{}, err
		}
		reqs = append(reqs, request{
			url:   base + "/v2/prices/" + url.PathEscape(p.String()) + "/spot",
			pairs: []prices.Pair{p},
			read:  read,
		})
	}
	return reqs
}

// generic reads each pair from the URL template with the configured paths.
func (c PollerConfig) generic(pairs []prices.Pair) ([]request, []error) {
	var errs []error
	if c.BaseURL != "" || len(c.CoinGeckoIDs) > 0 || len(c.BinanceQuotes) > 0 {
		errs = append(errs, errors.New("base_url, coingecko_ids and binance_quotes belong to a preset (for a generic definition use url)"))
	}
	if c.URL == "" {
		errs = append(errs, errors.New("url: required without a preset"))
	} else if err := checkURL(expand(c.URL.Reveal(), prices.MustPair("BTC-USD")), "http", "https"); err != nil {
		errs = append(errs, fmt.Errorf("url: %w", err))
	} else if strings.ContainsAny(expand(c.URL.Reveal(), prices.MustPair("BTC-USD")), "{}") {
		errs = append(errs, errors.New("url: unknown placeholder (want {base}, {quote}, {base_lower}, {quote_lower})"))
	}
	var pricePath, timePath path
	var err error
	if c.PricePath == "" {
		errs = append(errs, errors.New("price_path: required without a preset"))
	} else if pricePath, err = parsePath(c.PricePath); err != nil {
		errs = append(errs, fmt.Errorf("price_path: %w", err))
	}
	if c.TimePath != "" {
		if timePath, err = parsePath(c.TimePath); err != nil {
			errs = append(errs, fmt.Errorf("time_path: %w", err))
		}
	}
	format := c.TimeFormat
	read := func(body []byte, _ prices.Pair) (prices.Price, time.Time, error) {
		raw, err := pricePath.lookup(body)
		if err != nil {
			return prices.Price{}, time.Time{}, err
		}
		price, err := decodePrice(raw)
		if err != nil || timePath == nil {
			return price, time.Time{}, err
		}
		raw, err = timePath.lookup(body)
		if err != nil {
			return prices.Price{}, time.Time{}, err
		}
		at, err := decodeTime(raw, format)
		return price, at, err
	}
	reqs := make([]request, 0, len(pairs))
	byURL := map[string]prices.Pair{}
	for _, p := range pairs {
		u := expand(c.URL.Reveal(), p)
		if other, dup := byURL[u]; dup && c.URL != "" {
			errs = append(errs, fmt.Errorf("url: %s and %s give the same URL (use {base} and {quote})", other, p))
		}
		byURL[u] = p
		reqs = append(reqs, request{url: u, pairs: []prices.Pair{p}, read: read})
	}
	return reqs, errs
}

// expand fills the placeholders of a URL template with pair's symbols.
func expand(tmpl string, p prices.Pair) string {
	return strings.NewReplacer(
		"{base}", url.PathEscape(p.Base()),
		"{quote}", url.PathEscape(p.Quote()),
		"{base_lower}", url.PathEscape(strings.ToLower(p.Base())),
		"{quote_lower}", url.PathEscape(strings.ToLower(p.Quote())),
	).Replace(tmpl)
}

// isSymbol reports whether s is 1 to 12 of A-Z and 0-9.
func isSymbol(s string) bool {
	if s == "" || len(s) > 12 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if (s[i] < 'A' || s[i] > 'Z') && (s[i] < '0' || s[i] > '9') {
			return false
		}
	}
	return true
}
