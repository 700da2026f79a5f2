package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/coinledger/coinledger/domain/prices"
	"github.com/coinledger/coinledger/eventstore"
	pricemodel "github.com/coinledger/coinledger/projections/prices"
	"github.com/labstack/echo/v4"
)

type priceTick struct {
	Pair   string     `json:"pair"`
	Price  string     `json:"price"`
	Source string     `json:"source"`
	At     *time.Time `json:"at,omitempty"`
}

type priceResponse struct {
	Pair     string    `json:"pair"`
	Price    string    `json:"price"`
	Source   string    `json:"source"`
	At       time.Time `json:"at"`
	Position uint64    `json:"position"`
}

type candle struct {
	Start time.Time `json:"start"`
	Open  string    `json:"open"`
	High  string    `json:"high"`
	Low   string    `json:"low"`
	Close string    `json:"close"`
	Ticks int       `json:"ticks"`
}

type priceHistory struct {
	Pair    string          `json:"pair"`
	Prices  []priceResponse `json:"prices"`
	Candles []candle        `json:"candles,omitempty"`
	Next    string          `json:"next,omitempty"`
}

// requireRole allows callers holding role, and admins.
func requireRole(role string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if a := caller(c); !a.Admin() && !a.HasRole(role) {
				return errForbidden
			}
			return next(c)
		}
	}
}

// pushPrice records a price a feeder pushes: 201 when recorded, 200 when
// it repeats a recorded tick (same source, pair and time) or was coalesced.
func (h *handlers) pushPrice(c echo.Context) error {
	var req priceTick
	if _, err := bind(c, &req); err != nil {
		return err
	}
	pair, err := prices.ParsePair(req.Pair)
	if err != nil {
		return invalidFields(fieldError{Field: "pair", Message: "want BASE-QUOTE, e.g. BTC-USD"})
	}
	price, err := prices.Parse(req.Price)
	if err != nil {
		return invalidFields(fieldError{Field: "price", Message: "want a positive exact decimal, e.g. 64000.12"})
	}
	at := time.Now().UTC()
	if req.At != nil {
		at = req.At.UTC()
	}
	meta := eventstore.Metadata{Actor: "user:" + caller(c).Username, CorrelationID: c.Response().Header().Get(echo.HeaderXRequestID)}
	res, err := h.d.Market.Record(c.Request().Context(), meta, pair, prices.RecordTick{Source: req.Source, Price: price, At: at})
	if err != nil {
		return err
	}
	c.Response().Header().Set("Event-Position", strconv.FormatUint(res.Position, 10))
	status := http.StatusOK
	if res.Recorded {
		status = http.StatusCreated
	}
	return c.JSON(status, positionResponse{Position: res.Position})
}

func pairParam(c echo.Context) (prices.Pair, error) {
	p, err := prices.ParsePair(c.Param("pair"))
	if err != nil {
		return prices.Pair{}, errNotFound
	}
	return p, nil
}

func priceOf(t pricemodel.Tick) priceResponse {
	return priceResponse{Pair: t.Pair.String(), Price: t.Price.String(), Source: t.Source, At: t.At, Position: t.Position}
}

func (h *handlers) getPrice(c echo.Context) error {
	pair, err := pairParam(c)
	if err != nil {
		return err
	}
	t, err := pricemodel.Latest(c.Request().Context(), h.d.DB, pair)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, priceOf(t))
}

// priceHistory lists ticks newest first (cursor: the time of the last one
// seen), or with ?bucket= the OHLC candles of [from, to].
func (h *handlers) priceHistory(c echo.Context) error {
	pair, err := pairParam(c)
	if err != nil {
		return err
	}
	var from, to time.Time
	for name, dst := range map[string]*time.Time{"from": &from, "to": &to} {
		if v := c.QueryParam(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return invalidFields(fieldError{Field: name, Message: "want an RFC 3339 time"})
			}
			*dst = t
		}
	}
	ctx := c.Request().Context()
	out := priceHistory{Pair: pair.String(), Prices: []priceResponse{}}
	if v := c.QueryParam("bucket"); v != "" {
		bucket, err := time.ParseDuration(v)
		if err != nil || bucket < time.Second {
			return invalidFields(fieldError{Field: "bucket", Message: "want a duration of at least 1s, e.g. 1h"})
		}
		cs, err := pricemodel.OHLC(ctx, h.d.DB, pair, from, to, bucket)
		if err != nil {
			return err
		}
		out.Candles = make([]candle, len(cs))
		for i, k := range cs {
			out.Candles[i] = candle{Start: k.Start, Open: k.Open.String(), High: k.High.String(), Low: k.Low.String(),
				Close: k.Close.String(), Ticks: k.Ticks}
		}
		return c.JSON(http.StatusOK, out)
	}
	limit, err := limitParam(c)
	if err != nil {
		return err
	}
	if v := c.QueryParam("cursor"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return invalidFields(fieldError{Field: "cursor", Message: "not a cursor of this API"})
		}
		to = t // exclusive
	}
	ts, err := pricemodel.History(ctx, h.d.DB, pair, from, to, limit+1)
	if err != nil {
		return err
	}
	for i, t := range ts {
		if i == limit {
			out.Next = ts[limit-1].At.Format(time.RFC3339Nano)
			break
		}
		out.Prices = append(out.Prices, priceOf(t))
	}
	return c.JSON(http.StatusOK, out)
}
