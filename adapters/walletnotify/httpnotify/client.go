package httpnotify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coinledger/coinledger/adapters/walletnotify"
)

var (
	// ErrUnknownCoin: the server has no such coin (404).
	ErrUnknownCoin = errors.New("httpnotify: unknown coin")
	// ErrUnavailable: the server could not queue the notification (503);
	// posting again later may work.
	ErrUnavailable = errors.New("httpnotify: unavailable")
)

// ResponseError is a refusal by the server. It unwraps to
// walletnotify.ErrInvalidTxID (code invalid_txid), ErrUnknownCoin (404) or
// ErrUnavailable (503) where those apply.
type ResponseError struct {
	StatusCode int
	Code       string // the problem's code, "" if the body was not one
	Message    string
}

func (e *ResponseError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("httpnotify: status %d", e.StatusCode)
	}
	return fmt.Sprintf("httpnotify: status %d: %s: %s", e.StatusCode, e.Code, e.Message)
}

func (e *ResponseError) Unwrap() error {
	switch {
	case e.Code == "invalid_txid":
		return walletnotify.ErrInvalidTxID
	case e.StatusCode == http.StatusNotFound:
		return ErrUnknownCoin
	case e.StatusCode == http.StatusServiceUnavailable:
		return ErrUnavailable
	}
	return nil
}

// Post notifies the server at baseURL (e.g. http://127.0.0.1:28882) of txid,
// for coin ("" for the server's default coin), as a node's walletnotify
// script would. The txid is checked first (an error wrapping
// walletnotify.ErrInvalidTxID, nothing sent). A nil client means one with a
// 10 s timeout. It returns nil on 202 and a *ResponseError for any other
// status.
func Post(ctx context.Context, client *http.Client, baseURL, coin, txid string) error {
	id, err := walletnotify.ParseTxID(txid)
	if err != nil {
		return fmt.Errorf("httpnotify post: %w", err)
	}
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	target := strings.TrimSuffix(baseURL, "/") + "/" + url.PathEscape(coin)
	body := url.Values{"txid": {id}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("httpnotify post %s: %w", id, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("httpnotify post %s: %w", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusAccepted {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil
	}
	rerr := &ResponseError{StatusCode: resp.StatusCode}
	var p problem
	if json.NewDecoder(io.LimitReader(resp.Body, 4<<10)).Decode(&p) == nil {
		rerr.Code, rerr.Message = p.Code, p.Message
	}
	return fmt.Errorf("httpnotify post %s %s: %w", coin, id, rerr)
}
