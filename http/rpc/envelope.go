package rpc

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// JSON-RPC 2.0 error codes.
const (
	CodeParseError     = -32700 // the body is not JSON
	CodeInvalidRequest = -32600 // the JSON is not a request object
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternal       = -32603
	// CodeServerError is an application problem: error.data is the HTTP
	// API's problem document (code, title, status, detail, errors).
	CodeServerError = -32000
)

// MaxBatch is the most requests one batch may hold; a longer batch is one
// -32600 error.
const MaxBatch = 100

// Error is a JSON-RPC error object.
type Error struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("json-rpc error %d: %s", e.Code, e.Message) }

// Errorf returns an Error with code and a formatted message.
func Errorf(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Request is one decoded call. A request without an id is a notification:
// it is run and never answered.
type Request struct {
	ID     json.RawMessage // nil: a notification; else a string, number or null
	Method string
	Params json.RawMessage // nil, a JSON array or a JSON object
}

// Notification reports whether r has no id.
func (r Request) Notification() bool { return r.ID == nil }

// Response is one answer: Result on success (null included), Error else.
type Response struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
}

var null = json.RawMessage("null")

func success(id, result json.RawMessage) Response {
	if len(result) == 0 {
		result = null
	}
	return Response{JSONRPC: "2.0", ID: idOrNull(id), Result: result}
}

func failure(id json.RawMessage, err *Error) Response {
	return Response{JSONRPC: "2.0", ID: idOrNull(id), Error: err}
}

func idOrNull(id json.RawMessage) json.RawMessage {
	if id == nil {
		return null
	}
	return id
}

// Item is one element of a decoded message: a valid Request, or the error
// to answer in its place (with the id it carried, if one could be read).
type Item struct {
	Request
	Err *Error
}

// Decode parses a message: one request object or a batch (a JSON array of
// them). It returns the items in order and whether the message was a
// batch. The whole message fails (one error, id null) when it is not JSON
// (-32700), an empty or too long batch (-32600), or neither an object nor
// an array (-32600); otherwise each item that is not a valid request
// becomes an Item with Err (-32600), answered in its place.
//
// A valid request is an object with "method" (a non-empty string),
// optional "params" (array or object), optional "id" (string, number or
// null; absent: a notification) and optional "jsonrpc", which must be
// "2.0" when present (Graphene clients omit it). Other members are refused.
func Decode(msg []byte) (items []Item, batch bool, err *Error) {
	msg = bytes.TrimSpace(msg)
	if !json.Valid(msg) {
		return nil, false, Errorf(CodeParseError, "parse error: the message is not JSON")
	}
	if msg[0] != '[' {
		return []Item{decodeOne(msg)}, false, nil
	}
	var raw []json.RawMessage
	if e := json.Unmarshal(msg, &raw); e != nil {
		return nil, false, Errorf(CodeParseError, "parse error: %v", e)
	}
	switch {
	case len(raw) == 0:
		return nil, false, Errorf(CodeInvalidRequest, "invalid request: an empty batch")
	case len(raw) > MaxBatch:
		return nil, false, Errorf(CodeInvalidRequest, "invalid request: a batch holds at most %d requests", MaxBatch)
	}
	items = make([]Item, len(raw))
	for i, r := range raw {
		items[i] = decodeOne(r)
	}
	return items, true, nil
}

// decodeOne validates one request object of valid JSON.
func decodeOne(msg []byte) Item {
	if len(msg) == 0 || msg[0] != '{' {
		return Item{Err: Errorf(CodeInvalidRequest, "invalid request: not a JSON object")}
	}
	var members map[string]json.RawMessage
	if json.Unmarshal(msg, &members) != nil {
		return Item{Err: Errorf(CodeInvalidRequest, "invalid request: not a JSON object")}
	}
	var it Item
	if id, ok := members["id"]; ok {
		switch id[0] {
		case '"', 'n', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			it.ID = id
		default:
			return Item{Err: Errorf(CodeInvalidRequest, "invalid request: id must be a string, a number or null")}
		}
	}
	invalid := func(format string, args ...any) Item {
		return Item{Request: Request{ID: it.ID}, Err: Errorf(CodeInvalidRequest, "invalid request: "+format, args...)}
	}
	for name, v := range members {
		switch name {
		case "id":
		case "jsonrpc":
			var s string
			if json.Unmarshal(v, &s) != nil || s != "2.0" {
				return invalid(`jsonrpc must be "2.0"`)
			}
		case "method":
			if json.Unmarshal(v, &it.Method) != nil || it.Method == "" {
				return invalid("method must be a non-empty string")
			}
		case "params":
			if v[0] != '[' && v[0] != '{' {
				return invalid("params must be an array or an object")
			}
			it.Params = v
		default:
			return invalid("unknown member %q", clip(name))
		}
	}
	if it.Method == "" {
		return invalid("method is required")
	}
	return it
}

// clip shortens a client's string for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
