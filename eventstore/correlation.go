package eventstore

import "context"

// correlationKey is the context key of WithCorrelationID.
type correlationKey struct{}

// WithCorrelationID returns ctx carrying the correlation id id, for work
// that reaches the command side through a message bus rather than an HTTP
// request (a walletnotify, a price tick): the bus copies it into the
// message, the consumer puts it back into the handler's context, and the
// command side stores it as Metadata.CorrelationID. An empty id leaves ctx
// as it is.
func WithCorrelationID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, correlationKey{}, id)
}

// CorrelationID returns the correlation id ctx carries ("" if none).
func CorrelationID(ctx context.Context) string {
	id, _ := ctx.Value(correlationKey{}).(string)
	return id
}
