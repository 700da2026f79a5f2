package httpnotify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coinledger/coinledger/adapters/walletnotify"
	"github.com/coinledger/coinledger/adapters/walletnotify/httpnotify"
)

const txid = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"

// sink records what it is given; it fails while fail is set.
type sink struct {
	mu   sync.Mutex
	got  []walletnotify.Notification
	fail bool
}

func (s *sink) take(_ context.Context, n walletnotify.Notification) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("bus closed")
	}
	s.got = append(s.got, n)
	return nil
}

func (s *sink) all() []walletnotify.Notification {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]walletnotify.Notification(nil), s.got...)
}

func newServer(s *sink) *httpnotify.Server {
	return httpnotify.New(httpnotify.Config{Listen: "127.0.0.1:0", Coins: []string{"LTC", "DOGE"}, DefaultCoin: "BTC"}, s.take)
}

func multipartBody(t testing.TB, fields map[string]string) (string, []byte) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for k, v := range fields {
		if err := mw.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), buf.Bytes()
}

const form = "application/x-www-form-urlencoded"

func TestHandler(t *testing.T) {
	t.Parallel()
	mpType, mpBody := multipartBody(t, map[string]string{"txid": strings.ToUpper(txid)})
	bigType, bigBody := multipartBody(t, map[string]string{"txid": txid, "pad": strings.Repeat("x", httpnotify.MaxBodyBytes)})
	for _, tc := range []struct {
		name, method, target, ctype, body string
		status                            int
		code, coin                        string // problem code, or coin queued
	}{
		{"form", "POST", "/", form, "txid=" + txid, 202, "", "BTC"},
		{"form upper case and spaces", "POST", "/", form, "txid=+" + strings.ToUpper(txid) + "%0A", 202, "", "BTC"},
		{"coin path", "POST", "/ltc", form, "txid=" + txid, 202, "", "LTC"},
		{"coin path trailing slash", "POST", "/DOGE/", form, "txid=" + txid, 202, "", "DOGE"},
		{"query", "POST", "/?txid=" + txid, "", "", 202, "", "BTC"},
		{"form wins over query", "POST", "/?txid=zz", form, "txid=" + txid, 202, "", "BTC"},
		{"multipart", "POST", "/LTC", mpType, string(mpBody), 202, "", "LTC"},
		{"charset", "POST", "/", form + "; charset=utf-8", "txid=" + txid, 202, "", "BTC"},
		{"missing", "POST", "/", form, "tx=" + txid, 400, "invalid_txid", ""},
		{"empty body", "POST", "/", "", "", 400, "invalid_txid", ""},
		{"malformed", "POST", "/", form, "txid=foobar", 400, "invalid_txid", ""},
		{"63 digits", "POST", "/", form, "txid=" + txid[1:], 400, "invalid_txid", ""},
		{"json body ignored", "POST", "/", "application/json", `{"txid":"` + txid + `"}`, 400, "invalid_txid", ""},
		{"multipart without boundary", "POST", "/", "multipart/form-data", "txid=" + txid, 400, "invalid_request", ""},
		{"unknown coin", "POST", "/XMR", form, "txid=" + txid, 404, "unknown_coin", ""},
		{"nested path", "POST", "/LTC/x", form, "txid=" + txid, 404, "unknown_coin", ""},
		{"GET", "GET", "/?txid=" + txid, "", "", 405, "method_not_allowed", ""},
		{"PUT", "PUT", "/LTC", form, "txid=" + txid, 405, "method_not_allowed", ""},
		{"large form", "POST", "/", form, "txid=" + txid + "&pad=" + strings.Repeat("x", httpnotify.MaxBodyBytes), 413, "body_too_large", ""},
		{"large multipart", "POST", "/", bigType, string(bigBody), 413, "body_too_large", ""},
		{"large other", "POST", "/?txid=" + txid, "text/plain", strings.Repeat("x", httpnotify.MaxBodyBytes+1), 413, "body_too_large", ""},
		{"at the limit", "POST", "/", form, "txid=" + txid + "&pad=" + strings.Repeat("x", httpnotify.MaxBodyBytes-75), 202, "", "BTC"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &sink{}
			req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			rec := httptest.NewRecorder()
			newServer(s).Handler().ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			var body map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			got := s.all()
			if tc.status != 202 {
				if body["code"] != tc.code || body["message"] == "" {
					t.Errorf("problem %v, want code %q", body, tc.code)
				}
				if len(got) != 0 {
					t.Errorf("sink got %v on a %d", got, rec.Code)
				}
				if tc.status == 405 && rec.Header().Get("Allow") != "POST" {
					t.Errorf("Allow %q", rec.Header().Get("Allow"))
				}
				return
			}
			want := walletnotify.Notification{Coin: tc.coin, TxID: txid, Source: "http"}
			if len(got) != 1 || got[0] != want {
				t.Fatalf("sink got %v, want [%v]", got, want)
			}
			if body["txid"] != txid || body["coin"] != tc.coin {
				t.Errorf("body %v", body)
			}
		})
	}
}

func TestHandlerSinkFails(t *testing.T) {
	t.Parallel()
	s := &sink{fail: true}
	req := httptest.NewRequest("POST", "/", strings.NewReader("txid="+txid))
	req.Header.Set("Content-Type", form)
	rec := httptest.NewRecorder()
	newServer(s).Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), `"unavailable"`) {
		t.Fatalf("%d %s, want 503 unavailable", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "bus closed") {
		t.Errorf("internal error leaked: %s", rec.Body)
	}
}

func TestHandlerNoDefaultCoin(t *testing.T) {
	t.Parallel()
	srv := httpnotify.New(httpnotify.Config{Coins: []string{"LTC"}}, (&sink{}).take)
	req := httptest.NewRequest("POST", "/?txid="+txid, nil)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound {
		t.Fatalf("POST / without a default coin: %d, want 404", rec.Code)
	}
}

// serve runs srv on a real listener until the test ends.
func serve(t *testing.T, srv *httpnotify.Server) (base string, stop func() time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for srv.Addr() == "" {
		select {
		case err := <-done:
			t.Fatalf("serve: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("not listening after 5 s")
		}
		time.Sleep(time.Millisecond)
	}
	var once sync.Once
	var took time.Duration
	stop = func() time.Duration {
		once.Do(func() {
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("serve returned %v after cancel, want nil", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("serve did not return within 10 s of cancel")
			}
			took = time.Since(start)
		})
		return took
	}
	t.Cleanup(func() { stop() })
	return "http://" + srv.Addr(), stop
}

func TestServeAndPost(t *testing.T) {
	t.Parallel()
	s := &sink{}
	base, stop := serve(t, newServer(s))
	ctx := t.Context()

	if err := httpnotify.Post(ctx, nil, base, "", strings.ToUpper(txid)); err != nil {
		t.Fatal(err)
	}
	if err := httpnotify.Post(ctx, http.DefaultClient, base+"/", "ltc", txid); err != nil {
		t.Fatal(err)
	}
	// What curl --data txid=%s sends.
	resp, err := http.Post(base, form, strings.NewReader("txid="+txid))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || !strings.Contains(string(b), txid) {
		t.Fatalf("curl-like post: %d %s", resp.StatusCode, b)
	}
	got := s.all()
	btc := walletnotify.Notification{Coin: "BTC", TxID: txid, Source: "http"}
	ltc := walletnotify.Notification{Coin: "LTC", TxID: txid, Source: "http"}
	want := []walletnotify.Notification{btc, ltc, btc}
	if len(got) != len(want) {
		t.Fatalf("sink got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("notification %d: %v, want %v", i, got[i], want[i])
		}
	}

	err = httpnotify.Post(ctx, nil, base, "XMR", txid)
	var rerr *httpnotify.ResponseError
	if !errors.Is(err, httpnotify.ErrUnknownCoin) || !errors.As(err, &rerr) || rerr.Code != "unknown_coin" {
		t.Errorf("unknown coin: %v", err)
	}
	if err := httpnotify.Post(ctx, nil, base, "", "nope"); !errors.Is(err, walletnotify.ErrInvalidTxID) {
		t.Errorf("bad txid: %v", err)
	}
	s.mu.Lock()
	s.fail = true
	s.mu.Unlock()
	if err := httpnotify.Post(ctx, nil, base, "", txid); !errors.Is(err, httpnotify.ErrUnavailable) {
		t.Errorf("failing sink: %v", err)
	}

	if d := stop(); d > 2*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	if err := httpnotify.Post(ctx, nil, base, "", txid); err == nil || errors.As(err, &rerr) {
		t.Errorf("post after shutdown: %v, want a connection error", err)
	}
}

func TestServeListenError(t *testing.T) {
	t.Parallel()
	s := &sink{}
	base, _ := serve(t, newServer(s))
	u, _ := url.Parse(base)
	err := httpnotify.New(httpnotify.Config{Listen: u.Host, DefaultCoin: "BTC"}, s.take).Serve(t.Context())
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("second listener on %s: %v, want a listen error", u.Host, err)
	}
	err = httpnotify.New(httpnotify.Config{Listen: "127.0.0.1:0"}, s.take).Serve(t.Context())
	if err == nil {
		t.Fatal("serve without any coin accepted")
	}
}

func FuzzHandler(f *testing.F) {
	mpType, mpBody := multipartBody(f, map[string]string{"txid": txid})
	f.Add(form, []byte("txid="+txid), "")
	f.Add(form, []byte("txid=%zz"), "txid="+txid)
	f.Add(form, []byte("txid="+strings.ToUpper(txid)+"&txid=x"), "")
	f.Add(mpType, mpBody, "")
	f.Add("multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"txid\"\r\n\r\n"+txid+"\r\n--x--\r\n"), "")
	f.Add("multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"txid\"; filename=\"a\"\r\n\r\n"+txid+"\r\n--x--\r\n"), "")
	f.Add("", []byte(nil), "txid="+txid)
	f.Add("text/plain", []byte(txid), "")
	f.Add("application/json", []byte(`{"txid":"`+txid+`"}`), "txid=%")
	srvSink := &sink{}
	srv := newServer(srvSink)
	f.Fuzz(func(t *testing.T, ctype string, body []byte, query string) {
		srvSink.mu.Lock()
		srvSink.got = nil
		srvSink.mu.Unlock()
		req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		req.URL.RawQuery = query
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		got := srvSink.all()
		switch rec.Code {
		case http.StatusAccepted:
			if len(got) != 1 {
				t.Fatalf("202 with %d notifications", len(got))
			}
			n := got[0]
			if id, err := walletnotify.ParseTxID(n.TxID); err != nil || id != n.TxID || n.Coin != "BTC" || n.Source != "http" {
				t.Fatalf("sink got %+v", n)
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			if len(got) != 0 {
				t.Fatalf("%d but the sink got %v", rec.Code, got)
			}
		default:
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var p map[string]string
		if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
			t.Fatalf("body %q is not JSON: %v", rec.Body, err)
		}
	})
}
