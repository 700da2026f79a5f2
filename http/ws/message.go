package ws

import (
	"encoding/json"
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

// inbound is any client message.
type inbound struct {
	Type   string   `json:"type"`
	Token  string   `json:"token"`
	Topics []string `json:"topics"`
	From   *uint64  `json:"from"`
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
