package api

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
)

// rpcParam is a parameter of a JSON-RPC method, from openapi.json.
type rpcParam struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Required    bool            `json:"required,omitempty"`
	Schema      json.RawMessage `json:"schema"`
}

// rpcOperation is what openapi.json says of a method's REST route.
type rpcOperation struct {
	summary, description string
	path, query          []rpcParam
	idempotency          *rpcParam       // the Idempotency-Key header, if the route takes one
	body                 json.RawMessage // the request body's schema, nil without a body
	bodyRequired         []string
	bodyProps            map[string]json.RawMessage
	result               json.RawMessage // the success response's schema
}

var (
	rpcOpsOnce sync.Once
	rpcOps     map[string]*rpcOperation
	openRPC    []byte
)

// openRPCOperation returns the operation of m's route.
func openRPCOperation(m rpcMethod) *rpcOperation {
	rpcOpsOnce.Do(loadRPCOperations)
	return rpcOps[m.method+" "+m.path]
}

// openRPCDocument returns the OpenRPC document of the methods.
func openRPCDocument() []byte {
	rpcOpsOnce.Do(loadRPCOperations)
	return openRPC
}

// openAPIDoc is the part of openapi.json the method table reads.
type openAPIDoc struct {
	Info struct {
		Version string `json:"version"`
	} `json:"info"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Parameters map[string]openAPIParam    `json:"parameters"`
		Schemas    map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

type openAPIParam struct {
	Ref         string          `json:"$ref"`
	Name        string          `json:"name"`
	In          string          `json:"in"`
	Required    bool            `json:"required"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
}

type openAPIOp struct {
	Summary     string         `json:"summary"`
	Description string         `json:"description"`
	Parameters  []openAPIParam `json:"parameters"`
	RequestBody *struct {
		Content map[string]struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Content map[string]struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

// loadRPCOperations reads openapi.json for every method of the table and
// builds the OpenRPC document. A method whose route is not documented
// panics: the table and the contract are both in this package, and a test
// builds the document.
func loadRPCOperations() {
	var doc openAPIDoc
	if err := json.Unmarshal(openapiJSON, &doc); err != nil {
		panic("api: openapi.json: " + err.Error())
	}
	rpcOps = map[string]*rpcOperation{}
	var methods []any
	for _, m := range rpcMethods {
		raw, ok := doc.Paths[m.path][strings.ToLower(m.method)]
		if !ok {
			panic(fmt.Sprintf("api: json-rpc method %s: %s %s is not in openapi.json", m.name, m.method, m.path))
		}
		var o openAPIOp
		if err := json.Unmarshal(raw, &o); err != nil {
			panic(fmt.Sprintf("api: openapi.json %s %s: %v", m.method, m.path, err))
		}
		op := &rpcOperation{summary: o.Summary, description: o.Description}
		for _, p := range o.Parameters {
			if p.Ref != "" {
				p = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
			}
			rp := rpcParam{Name: p.Name, Description: p.Description, Required: p.Required, Schema: p.Schema}
			switch p.In {
			case "path":
				op.path = append(op.path, rp)
			case "query":
				op.query = append(op.query, rp)
			case "header":
				if p.Name == "Idempotency-Key" {
					rp.Name = idempotencyParam
					op.idempotency = &rp
				}
			}
		}
		if o.RequestBody != nil {
			op.body = o.RequestBody.Content["application/json"].Schema
			var s struct {
				Ref        string                     `json:"$ref"`
				Required   []string                   `json:"required"`
				Properties map[string]json.RawMessage `json:"properties"`
			}
			_ = json.Unmarshal(op.body, &s)
			if s.Ref != "" {
				_ = json.Unmarshal(doc.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")], &s)
			}
			op.bodyRequired, op.bodyProps = s.Required, s.Properties
		}
		for _, status := range []string{"200", "201", "202"} {
			if r, ok := o.Responses[status]; ok {
				op.result = r.Content["application/json"].Schema
				break
			}
		}
		rpcOps[m.method+" "+m.path] = op
		methods = append(methods, openRPCMethod(m, op))
	}
	components := map[string]any{"schemas": doc.Components.Schemas}
	b, err := json.MarshalIndent(map[string]any{
		"openrpc": "1.3.2",
		"info": map[string]any{
			"title":   "coinledger JSON-RPC",
			"version": doc.Info.Version,
			"description": "JSON-RPC 2.0 at /rpc (HTTP POST, or a websocket on GET /rpc). Each method runs the REST " +
				"route named in its x-rest member, with the same authentication, permissions, validation and " +
				"idempotency; its parameters are the route's path and query parameters and body fields by name " +
				"(or positionally: path, then query parameters), idempotency_key is the Idempotency-Key header. " +
				"A refusal is error -32602 (400, 422) or -32000 with the REST problem document (code, status, " +
				"detail) as error.data. x-api-set names the Graphene API set of the method: " +
				"{\"method\":\"call\",\"params\":[API, METHOD, ARGS]} on the websocket, login via API 1. " +
				"subscribe (websocket only) takes {\"topics\":[...],\"from\":N} and sends \"event\" notifications.",
		},
		"servers":    []any{map[string]any{"name": "coinledger", "url": "/rpc"}},
		"methods":    methods,
		"components": components,
	}, "", "  ")
	if err != nil {
		panic("api: openrpc document: " + err.Error())
	}
	// The schemas' references, "#/components/schemas/X", hold in the
	// OpenRPC document too: it carries openapi.json's schemas.
	openRPC = b
}

// openRPCMethod is m's OpenRPC method object.
func openRPCMethod(m rpcMethod, op *rpcOperation) map[string]any {
	var params []rpcParam
	params = append(params, op.path...)
	params = append(params, op.query...)
	if op.idempotency != nil {
		params = append(params, *op.idempotency)
	}
	// Body fields by name, for a stable document.
	for _, name := range slices.Sorted(maps.Keys(op.bodyProps)) {
		schema := op.bodyProps[name]
		var desc struct {
			Description string `json:"description"`
		}
		_ = json.Unmarshal(schema, &desc)
		params = append(params, rpcParam{Name: name, Description: desc.Description,
			Required: slices.Contains(op.bodyRequired, name), Schema: schema})
	}
	for i := range params {
		if params[i].Schema == nil {
			params[i].Schema = json.RawMessage(`{}`)
		}
	}
	result := op.result
	if result == nil {
		result = json.RawMessage(`{"type":"null"}`)
	}
	if params == nil {
		params = []rpcParam{}
	}
	return map[string]any{
		"name":           m.name,
		"summary":        op.summary,
		"description":    op.description,
		"paramStructure": "either",
		"params":         params,
		"result":         map[string]any{"name": "result", "schema": result},
		"x-rest":         m.method + " " + m.path,
		"x-api-set":      m.api,
	}
}
