// Package blockiotest is a simulated block.io for tests (block.io cannot be
// reached from tests): an httptest server answering the REST API v2 calls
// package blockio makes, with answers shaped like block.io's documented
// ones, plus block.io's notification websocket and web hooks. The chain
// and the wallet live in memory: payments and blocks are injected (Pay,
// Mine), confirmations advance with blocks, withdrawals go through
// prepare_transaction and submit_transaction, signed by Signer.
//
// Where block.io's documentation is silent the simulation chooses, and the
// backend must not depend on the choice: get_raw_transaction's fields are
// those of block.io's transaction notifications; error messages are
// block.io's where known (an invalid API key, a withdrawal beyond the
// balance) and made up elsewhere.
package blockiotest

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/coinledger/coinledger/adapters/chain/blockio"
)

// Defaults of Options.
const (
	DefaultAPIKey      = "0a1b-2c3d-4e5f-6a7b"
	DefaultPIN         = "simulated-secret-pin"
	DefaultNetwork     = "BTCTEST"
	DefaultFee         = 10_000
	DefaultStartHeight = 100
	DefaultFunding     = 1_000_000_000
	// PageSize is how many transactions a get_transactions page holds.
	PageSize = 25
	// MinWithdrawal is the smallest amount prepare_transaction accepts
	// (block.io's minimum for BTC: 0.00002).
	MinWithdrawal = 2_000
	// InvalidKeyMessage is block.io's answer to an unknown API key.
	InvalidKeyMessage = "API Key invalid or you have not enabled API access for this machine's IP address(es). Check that your API Keys are correct, and that you have enabled API access for this machine's IP Address(es) on your account's Settings page."
)

// Options configure a Server; the zero value gives the defaults.
type Options struct {
	APIKey  string
	PIN     string // the PIN Signer needs
	Network string
	// Fee is the network fee of every withdrawal, in minor units.
	Fee int64
	// StartHeight is the tip when the server starts.
	StartHeight int64
	// Funding is the wallet's confirmed balance at the start: a deposit
	// to its default address in block StartHeight-5. Negative: none (the
	// wallet starts without transactions).
	Funding int64
	// NotifyConfirmations: transaction notifications are sent when a
	// transaction appears and at each new block until it has this many
	// confirmations (default 3).
	NotifyConfirmations int
}

func (o *Options) setDefaults() {
	if o.APIKey == "" {
		o.APIKey = DefaultAPIKey
	}
	if o.PIN == "" {
		o.PIN = DefaultPIN
	}
	if o.Network == "" {
		o.Network = DefaultNetwork
	}
	o.Network = strings.ToUpper(o.Network)
	if o.Fee == 0 {
		o.Fee = DefaultFee
	}
	if o.StartHeight == 0 {
		o.StartHeight = DefaultStartHeight
	}
	if o.StartHeight < 6 {
		o.StartHeight = 6
	}
	if o.Funding == 0 {
		o.Funding = DefaultFunding
	}
	if o.NotifyConfirmations == 0 {
		o.NotifyConfirmations = 3
	}
}

// Call is an API request the server received.
type Call struct {
	Method string
	Path   string // the URL path
	Query  string // the raw URL query
	Params map[string]any
	HasKey bool // the body carried the right api_key
}

// Server is a simulated block.io account: one network, one wallet. Safe
// for concurrent use.
type Server struct {
	opts   Options
	srv    *httptest.Server
	wsWG   sync.WaitGroup
	hookWG sync.WaitGroup
	client *http.Client

	mu         sync.Mutex
	closed     bool
	tip        int64
	seq        uint64
	txs        map[string]*tx
	order      []string          // txids, oldest first
	addrs      []string          // the wallet's addresses, oldest first
	labels     map[string]string // address → label
	spent      map[outpoint]bool
	prepared   map[string]*prepared // by expected unsigned txid
	submitted  []string
	calls      []Call
	down       bool
	hangSubmit bool
	failNext   map[string]failure
	tamper     func(*blockio.PreparedTx)
	conns      map[*wsConn]bool
	wsAccepted int
	subs       []Subscription
	hooks      []hook
	deliveries []Delivery
}

type tx struct {
	id         string
	seq        uint64
	height     int64 // 0 in the mempool
	inputs     []txio
	outputs    []txio
	fee        int64
	fromWallet bool
}

type txio struct {
	address string
	amount  int64
	prev    outpoint // inputs only
}

type outpoint struct {
	txid string
	vout uint32
}

type prepared struct {
	data   blockio.PreparedTx
	inputs []outpoint
}

type failure struct {
	status  int
	message string
}

// New starts a simulated block.io, closed when tb ends.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	opts.setDefaults()
	s := &Server{
		opts:     opts,
		client:   &http.Client{},
		txs:      map[string]*tx{},
		labels:   map[string]string{},
		spent:    map[outpoint]bool{},
		prepared: map[string]*prepared{},
		failNext: map[string]failure{},
		conns:    map[*wsConn]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v2/{method}", s.serveAPI)
	mux.HandleFunc("/ws/", s.serveWS)
	s.srv = httptest.NewServer(mux)
	tb.Cleanup(s.Close)

	s.mu.Lock()
	def := s.newAddressLocked("default")
	s.tip = opts.StartHeight - 6
	if opts.Funding > 0 {
		s.payLocked(def, opts.Funding)
	}
	s.mu.Unlock()
	s.mine(6, false)
	return s
}

// Close stops the server: websockets, then the API, then pending web hook
// deliveries.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.DropWebsockets()
	s.srv.Close()
	s.DropWebsockets() // any accepted while the listener closed
	s.wsWG.Wait()
	s.hookWG.Wait()
}

// URL is the API's base URL (Config.BaseURL of package blockio).
func (s *Server) URL() string { return s.srv.URL + "/api/v2/" }

// WebsocketURL is the notification websocket's URL.
func (s *Server) WebsocketURL() string { return "ws" + strings.TrimPrefix(s.srv.URL, "http") + "/ws/" }

// APIKey, PIN and Network are the account's.
func (s *Server) APIKey() string  { return s.opts.APIKey }
func (s *Server) PIN() string     { return s.opts.PIN }
func (s *Server) Network() string { return s.opts.Network }

// Fee is the network fee of every withdrawal.
func (s *Server) Fee() int64 { return s.opts.Fee }

// Config returns a blockio.Config for the server.
func (s *Server) Config() blockio.Config {
	return blockio.Config{
		APIKey:  blockio.Secret(s.opts.APIKey),
		PIN:     blockio.Secret(s.opts.PIN),
		Network: s.opts.Network,
		BaseURL: s.URL(),
	}
}

// Height is the tip.
func (s *Server) Height() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tip
}

// BlockHash is the hash of the block at height.
func (s *Server) BlockHash(height int64) string {
	return s.hash("block", uint64(height))
}

// Addresses returns the wallet's addresses, oldest first.
func (s *Server) Addresses() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.addrs)
}

// NewAddress adds an address to the wallet, as another client of the
// account would.
func (s *Server) NewAddress() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.newAddressLocked("")
}

// ExternalAddress returns a fresh valid address that is not the wallet's.
func (s *Server) ExternalAddress() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return address("2M", s.hash("external", s.seq))
}

// Pay sends amount from outside to address; the transaction is in the
// mempool, notified and listed when Pay returns.
func (s *Server) Pay(address string, amount int64) string {
	s.mu.Lock()
	t := s.payLocked(address, amount)
	out := s.eventsLocked(t)
	s.mu.Unlock()
	s.flush(out)
	return t.id
}

// Mine mines n blocks holding every mempool transaction (the first).
func (s *Server) Mine(n int) { s.mine(n, true) }

func (s *Server) mine(n int, notify bool) {
	for range n {
		s.mu.Lock()
		s.tip++
		var out []outgoing
		for _, id := range s.order {
			t := s.txs[id]
			if t.height == 0 {
				t.height = s.tip
			}
			if c := s.tip - t.height + 1; notify && c <= int64(s.opts.NotifyConfirmations) {
				out = append(out, s.eventsLocked(t)...)
			}
		}
		s.mu.Unlock()
		s.flush(out)
	}
}

// Output is an output of a transaction.
type Output struct {
	Address string
	Amount  int64
}

// Outputs returns the outputs of txid (nil if unknown).
func (s *Server) Outputs(txid string) []Output {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.txs[txid]
	if t == nil {
		return nil
	}
	var outs []Output
	for _, o := range t.outputs {
		outs = append(outs, Output{o.address, o.amount})
	}
	return outs
}

// Submitted returns the txids of the withdrawals broadcast so far.
func (s *Server) Submitted() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.submitted)
}

// Calls returns the API requests received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// SetDown makes every API call answer 503 with an HTML page until
// SetDown(false).
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// HangSubmit makes submit_transaction broadcast the transaction and then
// never answer (until the client gives up).
func (s *Server) HangSubmit(hang bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hangSubmit = hang
}

// FailNext makes the next call of method answer {"status":"fail"} with
// message and HTTP status.
func (s *Server) FailNext(method string, status int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext[method] = failure{status, message}
}

// TamperNextPrepare lets f change the next prepare_transaction answer (as
// a misbehaving API would); the transaction block.io keeps is unchanged.
func (s *Server) TamperNextPrepare(f func(*blockio.PreparedTx)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tamper = f
}

func (s *Server) hash(kind string, n ...uint64) string {
	h := sha256.New()
	h.Write([]byte("blockiotest/" + s.opts.Network + "/" + kind))
	for _, v := range n {
		h.Write(binary.BigEndian.AppendUint64(nil, v))
	}
	return hex.EncodeToString(h.Sum(nil))
}

const base58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

var validAddress = regexp.MustCompile(`^2[MN][1-9A-HJ-NP-Za-km-z]{33}$`)

// address makes a P2SH-looking address from a hex seed.
func address(prefix, seed string) string {
	b := []byte(prefix)
	for i := 0; i < 33; i++ {
		v, _ := strconv.ParseUint(seed[i:i+2], 16, 8)
		b = append(b, base58[int(v)%len(base58)])
	}
	return string(b)
}

func (s *Server) newAddressLocked(label string) string {
	s.seq++
	a := address("2N", s.hash("address", s.seq))
	if label == "" {
		label = fmt.Sprintf("shibe%d", len(s.addrs))
	}
	s.addrs = append(s.addrs, a)
	s.labels[a] = label
	return a
}

func (s *Server) isWallet(a string) bool {
	_, ok := s.labels[a]
	return ok
}

func (s *Server) addTxLocked(t *tx) {
	s.seq++
	t.seq = s.seq
	if t.id == "" {
		t.id = s.hash("tx", s.seq)
	}
	s.txs[t.id] = t
	s.order = append(s.order, t.id)
}

func (s *Server) payLocked(to string, amount int64) *tx {
	s.seq++
	from := address("2M", s.hash("sender", s.seq))
	t := &tx{
		inputs:  []txio{{address: from, amount: amount + 1_000, prev: outpoint{s.hash("prevout", s.seq), 0}}},
		outputs: []txio{{address: to, amount: amount}},
		fee:     1_000,
	}
	s.addTxLocked(t)
	return t
}

func (s *Server) confirmations(t *tx) int64 {
	if t.height == 0 {
		return 0
	}
	return s.tip - t.height + 1
}

func (s *Server) time(t *tx) int64 { return 1_700_000_000 + int64(t.seq)*10 }

// utxosLocked returns the wallet's unspent outputs, oldest first.
func (s *Server) utxosLocked() []struct {
	op outpoint
	io txio
} {
	var us []struct {
		op outpoint
		io txio
	}
	for _, id := range s.order {
		for i, o := range s.txs[id].outputs {
			op := outpoint{id, uint32(i)}
			if s.isWallet(o.address) && !s.spent[op] {
				us = append(us, struct {
					op outpoint
					io txio
				}{op, o})
			}
		}
	}
	return us
}

func (s *Server) balanceLocked() (available, pending int64) {
	for _, u := range s.utxosLocked() {
		if s.confirmations(s.txs[u.op.txid]) > 0 {
			available += u.io.amount
		} else {
			pending += u.io.amount
		}
	}
	return available, pending
}

// ---- API ----

func (s *Server) serveAPI(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	params := map[string]any{}
	_ = json.Unmarshal(body, &params)
	key, _ := params["api_key"].(string)
	delete(params, "api_key")

	s.mu.Lock()
	s.calls = append(s.calls, Call{Method: method, Path: r.URL.Path, Query: r.URL.RawQuery, Params: params, HasKey: key == s.opts.APIKey})
	if s.down {
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "<html><body>503 Service Temporarily Unavailable</body></html>")
		return
	}
	if r.Method != http.MethodPost {
		s.mu.Unlock()
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if key != s.opts.APIKey {
		s.mu.Unlock()
		fail(w, http.StatusUnauthorized, InvalidKeyMessage)
		return
	}
	if f, ok := s.failNext[method]; ok {
		delete(s.failNext, method)
		s.mu.Unlock()
		fail(w, f.status, f.message)
		return
	}
	if method == "submit_transaction" || method == "create_notification" {
		s.mu.Unlock() // these handlers lock for themselves
		switch method {
		case "submit_transaction":
			s.submit(w, r, params)
		default:
			s.createNotification(w, params)
		}
		return
	}
	defer s.mu.Unlock()
	switch method {
	case "get_balance":
		av, pend := s.balanceLocked()
		success(w, map[string]any{"network": s.opts.Network, "available_balance": blockio.FormatAmount(av), "pending_received_balance": blockio.FormatAmount(pend)})
	case "get_new_address":
		label, _ := params["label"].(string)
		for _, l := range s.labels {
			if label != "" && l == label {
				fail(w, http.StatusOK, "Label already exists on this account: "+label)
				return
			}
		}
		a := s.newAddressLocked(label)
		success(w, map[string]any{"network": s.opts.Network, "user_id": len(s.addrs) - 1, "address": a, "label": s.labels[a]})
	case "get_my_addresses":
		s.myAddresses(w, params)
	case "get_transactions":
		s.transactions(w, params)
	case "get_raw_transaction":
		s.rawTransaction(w, params)
	case "get_network_fee_estimate":
		s.feeEstimate(w, params)
	case "prepare_transaction":
		s.prepare(w, params)
	default:
		fail(w, http.StatusNotFound, "Unknown method: "+method)
	}
}

func success(w http.ResponseWriter, data any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": data})
}

func fail(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "fail", "data": map[string]any{"error_message": message}})
}

func (s *Server) myAddresses(w http.ResponseWriter, params map[string]any) {
	page := 1
	if p, ok := params["page"].(float64); ok && p >= 1 {
		page = int(p)
	}
	const per = 100
	list := []map[string]any{}
	for i := (page - 1) * per; i < len(s.addrs) && i < page*per; i++ {
		a := s.addrs[i]
		var av, pend int64
		for _, u := range s.utxosLocked() {
			if u.io.address != a {
				continue
			}
			if s.confirmations(s.txs[u.op.txid]) > 0 {
				av += u.io.amount
			} else {
				pend += u.io.amount
			}
		}
		list = append(list, map[string]any{"user_id": i, "address": a, "label": s.labels[a], "available_balance": blockio.FormatAmount(av), "pending_received_balance": blockio.FormatAmount(pend)})
	}
	success(w, map[string]any{"network": s.opts.Network, "addresses": list})
}

func (s *Server) transactions(w http.ResponseWriter, params map[string]any) {
	kind, _ := params["type"].(string)
	if kind != "received" && kind != "sent" {
		fail(w, http.StatusOK, "Parameter type must be one of: sent, received")
		return
	}
	var list []*tx // newest first
	for i := len(s.order) - 1; i >= 0; i-- {
		t := s.txs[s.order[i]]
		if kind == "sent" && t.fromWallet {
			list = append(list, t)
		}
		if kind == "received" && !t.fromWallet && slices.ContainsFunc(t.outputs, func(o txio) bool { return s.isWallet(o.address) }) {
			list = append(list, t)
		}
	}
	if before, _ := params["before_tx"].(string); before != "" {
		i := slices.IndexFunc(list, func(t *tx) bool { return t.id == before })
		if i < 0 {
			fail(w, http.StatusOK, "Invalid value for parameter before_tx")
			return
		}
		list = list[i+1:]
	}
	list = list[:min(len(list), PageSize)]
	txs := []map[string]any{}
	for _, t := range list {
		var senders []string
		for _, in := range t.inputs {
			if !slices.Contains(senders, in.address) {
				senders = append(senders, in.address)
			}
		}
		confidence := 0.89
		if s.confirmations(t) > 0 {
			confidence = 1.0
		}
		e := map[string]any{
			"txid": t.id, "from_green_address": false, "time": s.time(t), "confirmations": s.confirmations(t),
			"senders": senders, "confidence": confidence, "propagated_by_nodes": nil,
		}
		amounts := []map[string]any{}
		var total int64
		for _, o := range t.outputs {
			if s.isWallet(o.address) != (kind == "received") {
				continue
			}
			amounts = append(amounts, map[string]any{"recipient": o.address, "amount": blockio.FormatAmount(o.amount)})
			total += o.amount
		}
		if kind == "received" {
			e["amounts_received"] = amounts
		} else {
			e["amounts_sent"] = amounts
			e["total_amount_sent"] = blockio.FormatAmount(total)
		}
		txs = append(txs, e)
	}
	success(w, map[string]any{"network": s.opts.Network, "txs": txs})
}

func (s *Server) rawTransaction(w http.ResponseWriter, params map[string]any) {
	id, _ := params["txid"].(string)
	t := s.txs[strings.ToLower(id)]
	if t == nil {
		fail(w, http.StatusNotFound, "Transaction not found on the "+s.opts.Network+" network.")
		return
	}
	inputs, outputs := []map[string]any{}, []map[string]any{}
	for i, in := range t.inputs {
		inputs = append(inputs, map[string]any{"input_no": i, "address": in.address, "amount": blockio.FormatAmount(in.amount), "previous_txid": in.prev.txid, "previous_output_no": in.prev.vout, "type": "scripthash"})
	}
	for i, o := range t.outputs {
		outputs = append(outputs, map[string]any{"output_no": i, "address": o.address, "amount": blockio.FormatAmount(o.amount), "type": "scripthash", "script": "OP_HASH160 " + s.hash("script", uint64(i))[:40] + " OP_EQUAL"})
	}
	d := map[string]any{
		"network": s.opts.Network, "txid": t.id, "confirmations": s.confirmations(t), "time": s.time(t),
		"network_fee": blockio.FormatAmount(t.fee), "inputs": inputs, "outputs": outputs,
		"block_no": nil, "block_hash": nil, "block_time": nil, "tx_hex": s.hash("hex", t.seq),
	}
	if t.height > 0 {
		d["block_no"], d["block_hash"], d["block_time"] = t.height, s.BlockHash(t.height), 1_700_000_000+t.height*600
	}
	success(w, d)
}

// withdrawal reads and checks the parameters of a withdrawal; ok false
// when it answered a failure.
func (s *Server) withdrawal(w http.ResponseWriter, params map[string]any, addressKey, amountKey string) (to string, amount int64, ok bool) {
	to, _ = params[addressKey].(string)
	if !validAddress.MatchString(to) {
		fail(w, http.StatusOK, "Invalid value for parameter "+addressKey+": "+to)
		return "", 0, false
	}
	text, _ := params[amountKey].(string)
	amount, err := blockio.ParseAmount(text)
	if err != nil {
		fail(w, http.StatusOK, "Invalid value for parameter "+amountKey+": "+text)
		return "", 0, false
	}
	if amount < MinWithdrawal {
		fail(w, http.StatusOK, "Withdrawal amount must be at least "+blockio.FormatAmount(MinWithdrawal)+" "+s.opts.Network+".")
		return "", 0, false
	}
	available, _ := s.balanceLocked()
	if amount > available-s.opts.Fee {
		fail(w, http.StatusOK, fmt.Sprintf("Cannot withdraw funds without Network Fee of %s %s. Maximum withdrawable balance is %s %s.",
			blockio.FormatAmount(s.opts.Fee), s.opts.Network, blockio.FormatAmount(max(available-s.opts.Fee, 0)), s.opts.Network))
		return "", 0, false
	}
	return to, amount, true
}

func (s *Server) feeEstimate(w http.ResponseWriter, params map[string]any) {
	if _, _, ok := s.withdrawal(w, params, "to_addresses", "amounts"); !ok {
		return
	}
	success(w, map[string]any{"network": s.opts.Network, "estimated_network_fee": blockio.FormatAmount(s.opts.Fee)})
}

func (s *Server) userKey() *blockio.UserKey {
	return &blockio.UserKey{PublicKey: "02" + s.hash("user-key"), EncryptedPassphrase: pinCheck(s.opts.PIN)}
}

func (s *Server) prepare(w http.ResponseWriter, params map[string]any) {
	to, amount, ok := s.withdrawal(w, params, "to_address", "amounts")
	if !ok {
		return
	}
	need := amount + s.opts.Fee
	p := &prepared{}
	var in int64
	addrData := map[string]bool{}
	d := blockio.PreparedTx{Network: s.opts.Network, TxType: "basic", UserKey: s.userKey()}
	for _, u := range s.utxosLocked() {
		if in >= need {
			break
		}
		if s.confirmations(s.txs[u.op.txid]) == 0 {
			continue // block.io spends confirmed coins
		}
		p.inputs = append(p.inputs, u.op)
		d.Inputs = append(d.Inputs, blockio.PreparedInput{InputIndex: len(d.Inputs), PreviousTxID: u.op.txid, PreviousOutputIndex: u.op.vout, InputValue: blockio.FormatAmount(u.io.amount), SpendingAddress: u.io.address})
		if !addrData[u.io.address] {
			addrData[u.io.address] = true
			d.InputAddressData = append(d.InputAddressData, blockio.InputAddress{Address: u.io.address, AddressType: "P2WSH-over-P2SH", RequiredSignatures: 2, PublicKeys: []string{"02" + s.hash("blockio-key"), d.UserKey.PublicKey}})
		}
		in += u.io.amount
	}
	d.Outputs = append(d.Outputs, blockio.PreparedOutput{OutputIndex: 0, OutputCategory: blockio.CategoryUserSpecified, OutputValue: blockio.FormatAmount(amount), ReceivingAddress: to})
	if change := in - need; change > 0 {
		d.Outputs = append(d.Outputs, blockio.PreparedOutput{OutputIndex: 1, OutputCategory: blockio.CategoryChange, OutputValue: blockio.FormatAmount(change), ReceivingAddress: s.addrs[0]})
	}
	s.seq++
	d.ExpectedUnsignedTxID = s.hash("unsigned", s.seq)
	p.data = d
	s.prepared[d.ExpectedUnsignedTxID] = p
	if s.tamper != nil {
		d.Inputs, d.Outputs = slices.Clone(d.Inputs), slices.Clone(d.Outputs)
		s.tamper(&d)
		s.tamper = nil
	}
	out, _ := json.Marshal(d)
	var generic map[string]any
	_ = json.Unmarshal(out, &generic)
	generic["estimated_tx_size"] = 200 + 150*len(d.Inputs)
	success(w, generic)
}

func (s *Server) submit(w http.ResponseWriter, r *http.Request, params map[string]any) {
	raw, _ := json.Marshal(params["transaction_data"])
	var signed blockio.SignedTx
	if err := json.Unmarshal(raw, &signed); err != nil {
		fail(w, http.StatusOK, "Invalid value for parameter transaction_data")
		return
	}
	s.mu.Lock()
	p := s.prepared[signed.TxHex]
	if p == nil {
		s.mu.Unlock()
		fail(w, http.StatusOK, "Transaction not prepared by Block.io, or already submitted.")
		return
	}
	if len(signed.Signatures) != len(p.data.Inputs) {
		s.mu.Unlock()
		fail(w, http.StatusOK, "Missing signatures.")
		return
	}
	for _, sig := range signed.Signatures {
		if sig.Signature != signature(s.opts.PIN, signed.TxHex, sig.InputIndex) {
			s.mu.Unlock()
			fail(w, http.StatusOK, "Invalid signature for input "+strconv.Itoa(sig.InputIndex)+".")
			return
		}
	}
	for _, op := range p.inputs {
		if s.spent[op] {
			s.mu.Unlock()
			fail(w, http.StatusOK, "Inputs already spent.")
			return
		}
	}
	delete(s.prepared, signed.TxHex)
	t := &tx{fromWallet: true}
	var in, out int64
	for i, op := range p.inputs {
		s.spent[op] = true
		v, _ := blockio.ParseAmount(p.data.Inputs[i].InputValue)
		in += v
		t.inputs = append(t.inputs, txio{address: p.data.Inputs[i].SpendingAddress, amount: v, prev: op})
	}
	for _, o := range p.data.Outputs {
		v, _ := blockio.ParseAmount(o.OutputValue)
		out += v
		t.outputs = append(t.outputs, txio{address: o.ReceivingAddress, amount: v})
	}
	t.fee = in - out
	s.addTxLocked(t)
	s.submitted = append(s.submitted, t.id)
	hang := s.hangSubmit
	events := s.eventsLocked(t)
	s.mu.Unlock()
	s.flush(events)
	if hang {
		<-r.Context().Done()
		return
	}
	success(w, map[string]any{"network": s.opts.Network, "txid": t.id})
}

// ---- signing ----

// Signer is a blockio.Signer for the simulation: it refuses a PIN other
// than the server's (as decrypting the user key with a wrong PIN fails)
// and signs each input with a stand-in the server checks.
type Signer struct{}

// Sign implements blockio.Signer.
func (Signer) Sign(_ context.Context, pin blockio.Secret, p blockio.PreparedTx) (blockio.SignedTx, error) {
	if p.UserKey == nil || p.ExpectedUnsignedTxID == "" {
		return blockio.SignedTx{}, fmt.Errorf("blockiotest signer: prepared transaction without user key or expected txid")
	}
	if pinCheck(pin.Reveal()) != p.UserKey.EncryptedPassphrase {
		return blockio.SignedTx{}, fmt.Errorf("blockiotest signer: invalid secret PIN")
	}
	st := blockio.SignedTx{TxType: p.TxType, TxHex: p.ExpectedUnsignedTxID}
	for _, in := range p.Inputs {
		st.Signatures = append(st.Signatures, blockio.Signature{InputIndex: in.InputIndex, PublicKey: p.UserKey.PublicKey, Signature: signature(pin.Reveal(), p.ExpectedUnsignedTxID, in.InputIndex)})
	}
	return st, nil
}

func pinCheck(pin string) string {
	h := sha256.Sum256([]byte("blockiotest/pin/" + pin))
	return hex.EncodeToString(h[:])
}

func signature(pin, unsigned string, input int) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("blockiotest/sig/%s/%s/%d", pin, unsigned, input)))
	return hex.EncodeToString(h[:])
}

// ---- notifications ----

// Subscription is a websocket subscription the server received.
type Subscription struct {
	Conn     int    // the connection's number, from 1
	Type     string // account, address, new-blocks, new-transactions
	Network  string
	Address  string
	KeyValid bool // account: the api_key was the account's
}

type wsConn struct {
	c    *websocket.Conn
	n    int
	subs []Subscription
}

type hook struct {
	id, kind, url, address string
}

// Delivery is a web hook POST the server made.
type Delivery struct {
	NotificationID string
	Attempt        int
	TxID           string
	Status         int // 0: no answer
}

// outgoing is a notification to send once the lock is released.
type outgoing struct {
	conn *wsConn
	hook *hook
	msg  map[string]any
}

// eventsLocked builds the notifications of t's current state: one per
// wallet address t touches, to each subscriber.
func (s *Server) eventsLocked(t *tx) []outgoing {
	type change struct{ sent, received int64 }
	changes := map[string]*change{}
	var order []string
	touch := func(a string) *change {
		if changes[a] == nil {
			changes[a] = &change{}
			order = append(order, a)
		}
		return changes[a]
	}
	for _, in := range t.inputs {
		if s.isWallet(in.address) {
			touch(in.address).sent += in.amount
		}
	}
	for _, o := range t.outputs {
		if s.isWallet(o.address) {
			touch(o.address).received += o.amount
		}
	}
	var out []outgoing
	for _, a := range order {
		c := changes[a]
		data := map[string]any{
			"network": s.opts.Network, "address": a, "balance_change": blockio.FormatAmount(c.received - c.sent),
			"amount_sent": blockio.FormatAmount(c.sent), "amount_received": blockio.FormatAmount(c.received),
			"txid": t.id, "confirmations": s.confirmations(t), "is_green": false,
		}
		for conn := range s.conns {
			for _, sub := range conn.subs {
				switch {
				case sub.Type == "account" && sub.KeyValid:
					out = append(out, outgoing{conn: conn, msg: map[string]any{"type": "account", "data": data}})
				case sub.Type == "address" && sub.Address == a && strings.EqualFold(sub.Network, s.opts.Network):
					out = append(out, outgoing{conn: conn, msg: map[string]any{"type": "address", "data": data}})
				}
			}
		}
		for i := range s.hooks {
			h := &s.hooks[i]
			if h.kind == "account" || (h.kind == "address" && h.address == a) {
				s.seq++
				out = append(out, outgoing{hook: h, msg: map[string]any{"notification_id": h.id, "type": h.kind, "data": data, "created_at": 1_700_000_000 + int64(s.seq)}})
			}
		}
	}
	return out
}

func (s *Server) flush(out []outgoing) {
	for _, o := range out {
		switch {
		case o.conn != nil:
			b, _ := json.Marshal(o.msg)
			_ = o.conn.write(b)
		case o.hook != nil:
			s.hookWG.Add(1)
			go func() {
				defer s.hookWG.Done()
				s.deliver(o.hook, o.msg)
			}()
		}
	}
}
