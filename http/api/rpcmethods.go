package api

import (
	"net/http"

	"github.com/coinledger/coinledger/domain/identity/graphene"
	"github.com/coinledger/coinledger/http/rpc"
)

// API sets of coinledger's own that Graphene has no counterpart of. Users
// imported from a Graphene permission map hold only Graphene's sets; other
// users are not limited by API set (their roles and grants decide, as over
// REST).
const (
	ledgerAPI = "ledger_api" // holds, locks, alerts, API keys, price pushes
	adminAPI  = "admin_api"  // users, wallets, read models, simulation, imports
	auditAPI  = "audit_api"  // the event log and checkpoints
)

// rpcMethod is one JSON-RPC method: the REST route it runs. Parameters
// named like the route's path parameters fill the path; those named like
// its documented query parameters fill the query; idempotency_key becomes
// the Idempotency-Key header; the rest is the JSON body (body routes only).
// Positional parameters fill the path parameters, then the query
// parameters, in order. The description and parameters of the OpenRPC
// document come from the route's operation in openapi.json.
type rpcMethod struct {
	name   string
	method string // HTTP method
	path   string // OpenAPI path template, e.g. /api/v1/wallets/{wallet}
	api    string // the API set the method belongs to
}

// rpcMethods is the one table of JSON-RPC methods, REST routes one to one
// (the server-sent event stream, the NDJSON export, the websocket and the
// operational endpoints are not JSON calls and have no method).
var rpcMethods = []rpcMethod{
	{"auth.login", http.MethodPost, "/api/v1/auth/login", rpc.LoginAPI},
	{"auth.token", http.MethodPost, "/api/v1/auth/token", rpc.LoginAPI},
	{"auth.logout", http.MethodPost, "/api/v1/auth/logout", rpc.LoginAPI},
	{"me.get", http.MethodGet, "/api/v1/me", graphene.DatabaseAPI},
	{"api_keys.create", http.MethodPost, "/api/v1/api-keys", ledgerAPI},
	{"api_keys.delete", http.MethodDelete, "/api/v1/api-keys/{id}", ledgerAPI},

	{"users.create", http.MethodPost, "/api/v1/users", adminAPI},
	{"users.list", http.MethodGet, "/api/v1/users", adminAPI},
	{"users.grant", http.MethodPut, "/api/v1/users/{username}/wallets/{wallet}", adminAPI},
	{"users.revoke", http.MethodDelete, "/api/v1/users/{username}/wallets/{wallet}", adminAPI},
	{"users.revoke_sessions", http.MethodPost, "/api/v1/users/{username}/revoke-sessions", adminAPI},
	{"users.disable", http.MethodPost, "/api/v1/users/{username}/disable", adminAPI},
	{"users.enable", http.MethodPost, "/api/v1/users/{username}/enable", adminAPI},

	{"wallets.create", http.MethodPost, "/api/v1/wallets", adminAPI},
	{"wallets.list", http.MethodGet, "/api/v1/wallets", graphene.DatabaseAPI},
	{"wallets.get", http.MethodGet, "/api/v1/wallets/{wallet}", graphene.DatabaseAPI},
	{"wallets.lock", http.MethodPost, "/api/v1/wallets/{wallet}/lock", ledgerAPI},
	{"wallets.unlock", http.MethodPost, "/api/v1/wallets/{wallet}/unlock", ledgerAPI},
	{"wallets.rescan", http.MethodPost, "/api/v1/wallets/{wallet}/rescan", graphene.NetworkNodeAPI},
	{"rescans.get", http.MethodGet, "/api/v1/wallets/{wallet}/rescans/{id}", graphene.DatabaseAPI},

	{"accounts.create", http.MethodPost, "/api/v1/wallets/{wallet}/accounts", graphene.NetworkBroadcastAPI},
	{"accounts.list", http.MethodGet, "/api/v1/wallets/{wallet}/accounts", graphene.DatabaseAPI},
	{"accounts.get", http.MethodGet, "/api/v1/wallets/{wallet}/accounts/{account}", graphene.DatabaseAPI},
	{"accounts.entries", http.MethodGet, "/api/v1/wallets/{wallet}/accounts/{account}/entries", graphene.HistoryAPI},
	{"balances.get", http.MethodGet, "/api/v1/wallets/{wallet}/accounts/{account}/balance", graphene.DatabaseAPI},
	{"accounts.liability_proof", http.MethodGet, "/api/v1/wallets/{wallet}/accounts/{account}/liability-proof", graphene.DatabaseAPI},
	{"accounts.import", http.MethodPost, "/api/v1/wallets/{wallet}/accounts/{account}/imports", adminAPI},
	{"addresses.create", http.MethodPost, "/api/v1/wallets/{wallet}/accounts/{account}/addresses", graphene.NetworkBroadcastAPI},

	{"transfers.create", http.MethodPost, "/api/v1/wallets/{wallet}/transfers", graphene.NetworkBroadcastAPI},
	{"transfers.get", http.MethodGet, "/api/v1/wallets/{wallet}/transfers/{id}", graphene.DatabaseAPI},
	{"holds.create", http.MethodPost, "/api/v1/wallets/{wallet}/accounts/{account}/holds", ledgerAPI},
	{"holds.get", http.MethodGet, "/api/v1/wallets/{wallet}/holds/{id}", graphene.DatabaseAPI},
	{"holds.release", http.MethodPost, "/api/v1/wallets/{wallet}/holds/{id}/release", ledgerAPI},
	{"deposits.list", http.MethodGet, "/api/v1/wallets/{wallet}/deposits", graphene.HistoryAPI},
	{"withdrawals.create", http.MethodPost, "/api/v1/wallets/{wallet}/withdrawals", graphene.NetworkBroadcastAPI},
	{"withdrawals.get", http.MethodGet, "/api/v1/wallets/{wallet}/withdrawals/{id}", graphene.DatabaseAPI},
	{"withdrawals.resolve", http.MethodPost, "/api/v1/wallets/{wallet}/withdrawals/{id}/resolve", adminAPI},
	{"simulate.deposit", http.MethodPost, "/api/v1/wallets/{wallet}/simulate/deposit", adminAPI},
	{"simulate.blocks", http.MethodPost, "/api/v1/wallets/{wallet}/simulate/blocks", adminAPI},

	{"prices.push", http.MethodPost, "/api/v1/prices", ledgerAPI},
	{"prices.get", http.MethodGet, "/api/v1/prices/{pair}", graphene.DatabaseAPI},
	{"prices.history", http.MethodGet, "/api/v1/prices/{pair}/history", graphene.DatabaseAPI},
	{"alerts.create", http.MethodPost, "/api/v1/alerts", ledgerAPI},
	{"alerts.list", http.MethodGet, "/api/v1/alerts", ledgerAPI},
	{"alerts.delete", http.MethodDelete, "/api/v1/alerts/{id}", ledgerAPI},
	{"alerts.deliveries", http.MethodGet, "/api/v1/alerts/{id}/deliveries", ledgerAPI},
	{"alerts.redeliver", http.MethodPost, "/api/v1/alerts/{id}/deliveries/{delivery}/redeliver", ledgerAPI},

	{"events.list", http.MethodGet, "/api/v1/events", auditAPI},
	{"streams.get", http.MethodGet, "/api/v1/streams/{stream}", auditAPI},
	{"audit.checkpoints", http.MethodGet, "/api/v1/audit/checkpoints", auditAPI},
	{"audit.create_checkpoint", http.MethodPost, "/api/v1/audit/checkpoints", auditAPI},
	{"audit.public_keys", http.MethodGet, "/api/v1/audit/public-key", graphene.DatabaseAPI},

	{"status.get", http.MethodGet, "/api/v1/status", graphene.DatabaseAPI},
	{"projections.list", http.MethodGet, "/api/v1/projections", adminAPI},
	{"projections.retry", http.MethodPost, "/api/v1/projections/{name}/retry", adminAPI},
	{"projections.rebuild", http.MethodPost, "/api/v1/projections/{name}/rebuild", adminAPI},
	{"projections.jobs", http.MethodGet, "/api/v1/projections/jobs", adminAPI},
	{"projections.job", http.MethodGet, "/api/v1/projections/jobs/{id}", adminAPI},
	{"followers.retry", http.MethodPost, "/api/v1/followers/{name}/retry", adminAPI},
	{"followers.skip", http.MethodPost, "/api/v1/followers/{name}/skip", adminAPI},

	{"rpc.discover", http.MethodGet, "/rpc/openrpc.json", graphene.DatabaseAPI},
}

// rpcAPIs are the API sets a client may ask for by name.
var rpcAPIs = []string{graphene.DatabaseAPI, rpc.LoginAPI, graphene.HistoryAPI, graphene.NetworkBroadcastAPI,
	graphene.NetworkNodeAPI, ledgerAPI, adminAPI, auditAPI}
