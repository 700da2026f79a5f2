package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/labstack/echo/v4"
)

// loadSpec parses and validates the embedded document.
func loadSpec(tb testing.TB) *openapi3.T {
	tb.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI())
	if err != nil {
		tb.Fatalf("load openapi.json: %v", err)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableMultiError()); err != nil {
		tb.Fatalf("openapi.json does not validate: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentIsValid31(t *testing.T) {
	doc := loadSpec(t)
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi = %q, want 3.1.0", doc.OpenAPI)
	}
	if doc.Components == nil || doc.Components.SecuritySchemes["bearerAuth"] == nil || doc.Components.SecuritySchemes["basicAuth"] == nil {
		t.Fatal("bearerAuth and basicAuth security schemes are required")
	}
	// Validate does not check the JSON Schema `examples` keyword: do it here.
	check := func(name string, s *openapi3.Schema) {
		for i, ex := range s.Examples {
			if err := s.VisitJSON(ex, openapi3.EnableJSONSchema2020()); err != nil {
				t.Errorf("%s: examples[%d] does not match its schema: %v", name, i, err)
			}
		}
	}
	for name, ref := range doc.Components.Schemas {
		check(name, ref.Value)
		for p, pref := range ref.Value.Properties {
			check(name+"."+p, pref.Value)
		}
	}
}

// apiMD lists every method and path of /work/shared/API.md; the document may
// have more, never fewer.
var apiMD = []string{
	// Auth
	"POST /api/v1/auth/login",
	"POST /api/v1/auth/token",
	"POST /api/v1/auth/logout",
	"GET /api/v1/me",
	"POST /api/v1/api-keys",
	"DELETE /api/v1/api-keys/{id}",
	// Users and wallets
	"POST /api/v1/users",
	"GET /api/v1/users",
	"PUT /api/v1/users/{username}/wallets/{wallet}",
	"DELETE /api/v1/users/{username}/wallets/{wallet}",
	"POST /api/v1/users/{username}/revoke-sessions",
	"POST /api/v1/users/{username}/disable",
	"POST /api/v1/users/{username}/enable",
	"POST /api/v1/wallets",
	"GET /api/v1/wallets",
	"GET /api/v1/wallets/{wallet}",
	"POST /api/v1/wallets/{wallet}/lock",
	"POST /api/v1/wallets/{wallet}/unlock",
	"POST /api/v1/wallets/{wallet}/rescan",
	// Accounts, transfers, holds, deposits, withdrawals
	"POST /api/v1/wallets/{wallet}/accounts",
	"GET /api/v1/wallets/{wallet}/accounts",
	"GET /api/v1/wallets/{wallet}/accounts/{account}",
	"GET /api/v1/wallets/{wallet}/accounts/{account}/entries",
	"GET /api/v1/wallets/{wallet}/accounts/{account}/balance",
	"POST /api/v1/wallets/{wallet}/accounts/{account}/addresses",
	"POST /api/v1/wallets/{wallet}/transfers",
	"GET /api/v1/wallets/{wallet}/transfers/{id}",
	"POST /api/v1/wallets/{wallet}/accounts/{account}/holds",
	"POST /api/v1/wallets/{wallet}/holds/{id}/release",
	"GET /api/v1/wallets/{wallet}/deposits",
	"POST /api/v1/wallets/{wallet}/withdrawals",
	"GET /api/v1/wallets/{wallet}/withdrawals/{id}",
	"POST /api/v1/wallets/{wallet}/accounts/{account}/imports",
	"POST /api/v1/wallets/{wallet}/simulate/deposit",
	"POST /api/v1/wallets/{wallet}/simulate/blocks",
	// Prices and alerts
	"POST /api/v1/prices",
	"GET /api/v1/prices/{pair}",
	"GET /api/v1/prices/{pair}/history",
	"POST /api/v1/alerts",
	"GET /api/v1/alerts",
	"DELETE /api/v1/alerts/{id}",
	// Auditors, realtime, operations
	"GET /api/v1/events",
	"GET /api/v1/events/stream",
	"GET /api/v1/streams/{stream}",
	"GET /api/v1/audit/checkpoints",
	"GET /api/v1/ws",
	"POST /rpc",
	"GET /api/v1/status",
	"GET /healthz",
	"GET /readyz",
	"GET /metrics",
	"GET /api/openapi.json",
	"GET /docs",
}

func TestOpenAPICoversAPIMD(t *testing.T) {
	doc := loadSpec(t)
	for _, mp := range apiMD {
		method, path, _ := strings.Cut(mp, " ")
		item := doc.Paths.Value(path)
		if item == nil {
			t.Errorf("%s: path missing", mp)
			continue
		}
		if item.GetOperation(method) == nil {
			t.Errorf("%s: method missing", mp)
		}
	}
}

// TestOpenAPIOperations checks what every operation must have: an id, a known
// tag, a 500, error codes that exist and whose statuses it documents with a
// problem document (and no problem status without a code), and an
// Idempotency-Key wherever Idempotent-Replayed is sent.
func TestOpenAPIOperations(t *testing.T) {
	doc := loadSpec(t)
	codes := errorCodes(t, doc)
	tags := map[string]bool{}
	for _, tag := range doc.Tags {
		tags[tag.Name] = true
	}
	ids := map[string]string{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			name := method + " " + path
			if op.OperationID == "" {
				t.Errorf("%s: no operationId", name)
			} else if other, dup := ids[op.OperationID]; dup {
				t.Errorf("%s: operationId %q also used by %s", name, op.OperationID, other)
			}
			ids[op.OperationID] = name
			if len(op.Tags) != 1 || !tags[op.Tags[0]] {
				t.Errorf("%s: tags %v, want exactly one declared tag", name, op.Tags)
			}
			if op.Responses.Status(500) == nil {
				t.Errorf("%s: no 500 response", name)
			}
			opCodes, _ := op.Extensions["x-error-codes"].([]any)
			want := map[int]bool{}
			for _, c := range opCodes {
				sts, ok := codes[fmt.Sprint(c)]
				if !ok {
					t.Errorf("%s: x-error-codes has unknown code %v", name, c)
				}
				for _, st := range sts {
					want[st] = true
					r := op.Responses.Status(st)
					if r == nil || !isProblem(r.Value) {
						t.Errorf("%s: code %v needs a %d application/problem+json Problem response", name, c, st)
					}
				}
			}
			for key, r := range op.Responses.Map() {
				st, _ := strconv.Atoi(key)
				if isProblem(r.Value) && !want[st] {
					t.Errorf("%s: %s answers a problem document, but no code of its x-error-codes has that status", name, key)
				}
				if st >= 400 && !isProblem(r.Value) && path != "/readyz" {
					t.Errorf("%s: %s is not a problem document", name, key)
				}
			}
			replayed := false
			for _, r := range op.Responses.Map() {
				if r.Value.Headers["Idempotent-Replayed"] != nil {
					replayed = true
				}
			}
			key := op.Parameters.GetByInAndName("header", "Idempotency-Key")
			if replayed != (key != nil) {
				t.Errorf("%s: Idempotent-Replayed response header %v but Idempotency-Key parameter %v", name, replayed, key != nil)
			}
			if op.RequestBody != nil {
				for ct, mt := range op.RequestBody.Value.Content {
					if ct == "application/json" && path != "/rpc" && !strictObject(mt.Schema) {
						t.Errorf("%s: request body schema must have additionalProperties: false", name)
					}
				}
			}
		}
	}
	// The idempotent writes named in API.md require the key.
	for _, mp := range []string{
		"POST /api/v1/wallets/{wallet}/transfers",
		"POST /api/v1/wallets/{wallet}/withdrawals",
		"POST /api/v1/wallets/{wallet}/accounts/{account}/imports",
	} {
		method, path, _ := strings.Cut(mp, " ")
		op := doc.Paths.Value(path).GetOperation(method)
		if p := op.Parameters.GetByInAndName("header", "Idempotency-Key"); p == nil || !p.Required {
			t.Errorf("%s: no required Idempotency-Key header parameter", mp)
		}
	}
}

func isProblem(r *openapi3.Response) bool {
	mt := r.Content.Get("application/problem+json")
	return len(r.Content) == 1 && mt != nil && mt.Schema != nil && mt.Schema.Ref == "#/components/schemas/Problem"
}

// errorCodes returns components.x-error-codes (code → statuses) after
// checking it against the Problem schema's code enum and the table in
// info.description.
func errorCodes(t *testing.T, doc *openapi3.T) map[string][]int {
	t.Helper()
	raw, _ := doc.Components.Extensions["x-error-codes"].(map[string]any)
	if len(raw) == 0 {
		t.Fatal("components.x-error-codes is missing")
	}
	codes := map[string][]int{}
	for c, v := range raw {
		m, _ := v.(map[string]any)
		list, _ := m["statuses"].([]any)
		var sts []string
		for _, st := range list {
			f, _ := st.(float64)
			codes[c] = append(codes[c], int(f))
			sts = append(sts, strconv.Itoa(int(f)))
		}
		if len(sts) == 0 {
			t.Errorf("code %s has no statuses", c)
		}
		if row := fmt.Sprintf("| `%s` | %s |", c, strings.Join(sts, ", ")); !strings.Contains(doc.Info.Description, row) {
			t.Errorf("info.description has no row %q", row)
		}
	}
	var enum []string
	for _, v := range doc.Components.Schemas["Problem"].Value.Properties["code"].Value.Enum {
		enum = append(enum, v.(string))
	}
	sort.Strings(enum)
	keys := make([]string, 0, len(codes))
	for c := range codes {
		keys = append(keys, c)
	}
	sort.Strings(keys)
	if !slices.Equal(enum, keys) {
		t.Errorf("Problem.code enum %v != x-error-codes %v", enum, keys)
	}
	// The codes named in API.md and the design.
	for _, c := range []string{
		"validation_failed", "malformed_json", "unknown_field", "unsupported_media_type", "body_too_large",
		"invalid_amount", "unauthorized", "invalid_token", "permission_denied", "ip_not_allowed", "not_found",
		"wallet_exists", "account_exists", "insufficient_funds", "wallet_locked", "hold_not_found",
		"idempotency_key_reused", "idempotency_key_required", "wrong_expected_version", "rate_limited", "internal",
	} {
		if _, ok := codes[c]; !ok {
			t.Errorf("code %s is not documented", c)
		}
	}
	return codes
}

func strictObject(s *openapi3.SchemaRef) bool {
	if s == nil || s.Value == nil {
		return false
	}
	ap := s.Value.AdditionalProperties
	return ap.Has != nil && !*ap.Has
}

// dtoSchemas maps each wire type to its schema: the schema's name is the
// type's name with an upper-case first letter.
var dtoSchemas = []any{
	loginRequest{}, tokenRequest{}, tokenResponse{}, meResponse{}, walletAccess{},
	createWalletRequest{}, walletResponse{}, walletList{}, lockRequest{},
	createAccountRequest{}, balance{}, accountResponse{}, accountList{},
	entry{}, entryPage{}, balanceAt{},
	transferRequest{}, transferCreated{}, transferResponse{}, importRequest{},
	holdRequest{}, holdCreated{}, holdResponse{}, releaseRequest{}, positionResponse{},
	problem{}, fieldError{},
	projectionStatus{}, Backend{}, readModel{}, readModelList{}, rebuildJob{}, rebuildJobList{},
	createUserRequest{}, userResponse{}, userList{}, grantRequest{}, createAPIKeyRequest{}, apiKeyCreated{},
	addressResponse{}, simulateDepositRequest{}, simulatedTransaction{}, simulateBlocksRequest{}, simulatedBlocks{},
	depositPage{}, withdrawalRequest{}, withdrawalCreated{}, withdrawal{}, rescanResponse{},
	priceTick{}, priceResponse{}, priceHistory{}, candle{}, alertRequest{}, alert{}, alertList{}, alertChannels{}, alertRearm{},
	delivery{}, deliveryAttempt{}, deliveryList{}, resolveRequest{},
	webhookRequest{}, webhookResponse{}, webhookList{},
	Event{}, eventPage{}, streamPage{}, checkpointList{}, liabilityProof{},
}

func schemaName(t reflect.Type) string { return strings.ToUpper(t.Name()[:1]) + t.Name()[1:] }

// TestOpenAPIMatchesDTOs checks every wire type against its schema: the same
// property names as the JSON tags, required exactly when the field has no
// omitempty/omitzero, compatible types, and no other properties allowed.
func TestOpenAPIMatchesDTOs(t *testing.T) {
	doc := loadSpec(t)
	for _, v := range dtoSchemas {
		typ := reflect.TypeOf(v)
		name := schemaName(typ)
		t.Run(name, func(t *testing.T) {
			ref := doc.Components.Schemas[name]
			if ref == nil {
				t.Fatalf("no schema %s for type %s", name, typ)
			}
			s := ref.Value
			if !s.Type.Is("object") || !strictObject(ref) {
				t.Errorf("%s: want type object with additionalProperties: false", name)
			}
			fields := map[string]reflect.StructField{}
			var required []string
			for i := range typ.NumField() {
				f := typ.Field(i)
				tag := f.Tag.Get("json")
				jsonName, opts, _ := strings.Cut(tag, ",")
				if !f.IsExported() || jsonName == "-" {
					continue
				}
				if jsonName == "" {
					jsonName = f.Name
				}
				fields[jsonName] = f
				if !strings.Contains(","+opts+",", ",omitempty,") && !strings.Contains(","+opts+",", ",omitzero,") {
					required = append(required, jsonName)
				}
			}
			for p := range s.Properties {
				if _, ok := fields[p]; !ok {
					t.Errorf("%s.%s: property has no field in %s", name, p, typ)
				}
			}
			for jsonName, f := range fields {
				p := s.Properties[jsonName]
				if p == nil {
					t.Errorf("%s: field %s (json %q) has no property", name, f.Name, jsonName)
					continue
				}
				if err := compatible(f.Type, p); err != nil {
					t.Errorf("%s.%s: %v", name, jsonName, err)
				}
			}
			got := slices.Clone(s.Required)
			sort.Strings(got)
			sort.Strings(required)
			if !slices.Equal(got, required) {
				t.Errorf("%s: required %v, want the fields without omitempty/omitzero %v", name, got, required)
			}
		})
	}
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

// compatible tells whether values of Go type gt encode to what s allows.
func compatible(gt reflect.Type, s *openapi3.SchemaRef) error {
	if gt.Kind() == reflect.Pointer {
		gt = gt.Elem()
	}
	v := s.Value
	want := func(typ string) error {
		if !v.Type.Is(typ) {
			return fmt.Errorf("Go %s encodes as %s, schema says %v", gt, typ, v.Type.Slice())
		}
		return nil
	}
	switch {
	case gt == rawType: // any JSON value; the schema may say which kind
		return nil
	case gt == timeType:
		if err := want("string"); err != nil {
			return err
		}
		if v.Format != "date-time" {
			return fmt.Errorf("time.Time needs format date-time, got %q", v.Format)
		}
		return nil
	case gt.Kind() == reflect.String:
		return want("string")
	case gt.Kind() == reflect.Bool:
		return want("boolean")
	case gt.Kind() >= reflect.Int && gt.Kind() <= reflect.Uint64:
		if err := want("integer"); err != nil {
			return err
		}
		if gt.Kind() >= reflect.Uint && (v.Min == nil || *v.Min < 0) {
			return fmt.Errorf("unsigned Go %s needs minimum >= 0", gt)
		}
		return nil
	case gt.Kind() == reflect.Slice:
		if err := want("array"); err != nil {
			return err
		}
		if v.Items == nil {
			return fmt.Errorf("array without items")
		}
		if err := compatible(gt.Elem(), v.Items); err != nil {
			return fmt.Errorf("items: %w", err)
		}
		return nil
	case gt.Kind() == reflect.Struct:
		if wantRef := "#/components/schemas/" + schemaName(gt); s.Ref != wantRef {
			return fmt.Errorf("Go %s needs $ref %s, got %q", gt, wantRef, s.Ref)
		}
		return nil
	}
	return fmt.Errorf("Go %s: no rule", gt)
}

func TestDocsHandlers(t *testing.T) {
	e := echo.New()
	RegisterDocs(e)
	get := func(path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec
	}

	rec := get("/api/openapi.json")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		t.Fatalf("/api/openapi.json: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec.Body.String() != string(openapiJSON) {
		t.Error("/api/openapi.json does not serve the embedded document")
	}

	rec = get("/docs")
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("/docs: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !strings.Contains(body, `fetch("/api/openapi.json")`) {
		t.Error("/docs does not load /api/openapi.json")
	}
	// Works offline: no external scripts, styles, fonts or images.
	for _, external := range []string{"http://", "https://", "//cdn", "<link", "src="} {
		if strings.Contains(body, external) {
			t.Errorf("/docs refers to an external resource (%q)", external)
		}
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("/docs CSP %q", csp)
	}
}

// TestOpenAPIAmountPattern asserts the amount patterns accept exact decimal
// strings and reject what the contract forbids.
func TestOpenAPIAmountPattern(t *testing.T) {
	doc := loadSpec(t)
	amount := doc.Components.Schemas["Amount"].Value
	signed := doc.Components.Schemas["SignedAmount"].Value
	for _, tc := range []struct {
		v              string
		amount, signed bool
	}{
		{"0.00150000", true, true},
		{"12", true, true},
		{"0", true, true},
		{"-0.5", false, true},
		{"1.", false, false},
		{".5", false, false},
		{"01.5", false, false},
		{"1e8", false, false},
		{"1,5", false, false},
		{" 1", false, false},
		{"", false, false},
	} {
		if got := amount.VisitJSON(tc.v, openapi3.EnableJSONSchema2020()) == nil; got != tc.amount {
			t.Errorf("Amount %s: valid %v, want %v", strconv.Quote(tc.v), got, tc.amount)
		}
		if got := signed.VisitJSON(tc.v, openapi3.EnableJSONSchema2020()) == nil; got != tc.signed {
			t.Errorf("SignedAmount %s: valid %v, want %v", strconv.Quote(tc.v), got, tc.signed)
		}
	}
	if amount.VisitJSON(1.5, openapi3.EnableJSONSchema2020()) == nil {
		t.Error("Amount accepts a JSON number")
	}
}
