package ws

import (
	"encoding/json"
	"strings"
	"time"
)

// Message types, both ways.
const (
	msgAuth          = "auth"
	msgAuthenticated = "authenticated"
	msgSubscribe     = "subscribe"
	msgSubscribed    = "subscribed"
	msgEvent         = "event"
	msgHeartbeat     = "heartbeat"
	msgPing          = "ping"
	msgPong          = "pong"
	msgError         = "error"
)

// Error codes of error messages.
const (
	codeBadMessage   = "bad_message"
	codeUnknownTopic = "unknown_topic"
)

// inbound is any client message. {"subscribe": [topics], "from": N}
// (without a type) is a subscribe message too, the API.md form.
type inbound struct {
	Type      string   `json:"type"`
	Token     string   `json:"token"`
	Topics    []string `json:"topics"`
	Subscribe []string `json:"subscribe"`
	From      *uint64  `json:"from"`
}

// normalize turns the short subscribe form into the typed one.
func (m *inbound) normalize() {
	if m.Type == "" && len(m.Subscribe) > 0 {
		m.Type, m.Topics = msgSubscribe, m.Subscribe
	}
}

// firstToken returns the token of a first message: {"type":"auth",
// "token":T}, {"token":T}, the JSON string "T", or the bare token text
// (JoinMarket's clients send the token itself).
func firstToken(b []byte) (string, bool) {
	var m inbound
	if json.Unmarshal(b, &m) == nil {
		return m.Token, m.Token != "" && (m.Type == msgAuth || m.Type == "")
	}
	var str string
	if json.Unmarshal(b, &str) == nil {
		return str, str != ""
	}
	t := string(b)
	if t == "" || len(t) > 4096 || strings.ContainsAny(t, " \t\r\n{}\"") {
		return "", false
	}
	return t, true
}

type authenticatedMessage struct {
	Type      string    `json:"type"`
	Username  string    `json:"username"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

type subscribedMessage struct {
	Type   string   `json:"type"`
	Topics []string `json:"topics"`
	From   uint64   `json:"from"`
}

type eventMessage struct {
	Type      string          `json:"type"`
	Topic     string          `json:"topic"`
	Position  uint64          `json:"position"`
	Stream    string          `json:"stream"`
	Revision  uint64          `json:"revision"`
	EventType string          `json:"event_type"`
	Time      time.Time       `json:"time"`
	Data      json.RawMessage `json:"data"`
}

type heartbeatMessage struct {
	Type     string `json:"type"`
	Position uint64 `json:"position"`
}

type typeMessage struct {
	Type string `json:"type"`
}

type errorMessage struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// encode marshals a message built from the types above, which cannot fail.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("ws: encode message: " + err.Error())
	}
	return b
}
