package esdb

import (
	"errors"
	"fmt"
	"strings"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/coinledger/coinledger/eventstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// clientError returns the client's error inside err. esdb.FromError is not
// used: it reports ok=true for a nil error and does not unwrap, so the
// client's wrapped errors ("could not construct append operation. Reason:
// ...") would all look unknown.
func clientError(err error) (*esdb.Error, bool) {
	var e *esdb.Error
	ok := errors.As(err, &e)
	return e, ok
}

// hasCode reports whether err is the client's error with code.
func hasCode(err error, code esdb.ErrorCode) bool {
	e, ok := clientError(err)
	return ok && e.Code() == code
}

// translate maps a client error to the store's errors: a wrong expected
// version becomes eventstore.ErrConflict and an append the server finds too
// large eventstore.ErrInvalidEvent; everything else is returned as is,
// to be wrapped with the operation by the caller.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if hasCode(err, esdb.ErrorCodeWrongExpectedVersion) {
		e, _ := clientError(err)
		if inner := e.Err(); inner != nil {
			return fmt.Errorf("%w: %s", eventstore.ErrConflict, strings.TrimPrefix(inner.Error(), "wrong expected version: "))
		}
		return eventstore.ErrConflict
	}
	if st, ok := grpcStatus(err); ok && st.Code() == codes.InvalidArgument && isAppendTooLarge(st.Message()) {
		return fmt.Errorf("%w: %s", eventstore.ErrInvalidEvent, st.Message())
	}
	return err
}

// grpcStatus returns the gRPC status inside err.
func grpcStatus(err error) (*status.Status, bool) {
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		return se.GRPCStatus(), true
	}
	return nil, false
}

func isAppendTooLarge(msg string) bool {
	return strings.Contains(msg, "Maximum Append Size") || strings.Contains(msg, "Maximum Append Event Size")
}

// permanent reports whether retrying after err cannot help: access is
// denied, the request is invalid or the store's own data cannot be decoded.
func permanent(err error) bool {
	var d *decodeError
	if errors.As(err, &d) {
		return true
	}
	if e, ok := clientError(err); ok {
		switch e.Code() {
		case esdb.ErrorCodeAccessDenied, esdb.ErrorCodeUnauthenticated, esdb.ErrorCodeStreamDeleted, esdb.ErrorCodeParsing:
			return true
		}
	}
	if st, ok := grpcStatus(err); ok {
		switch st.Code() {
		case codes.InvalidArgument, codes.PermissionDenied, codes.Unauthenticated:
			return true
		}
	}
	return false
}

// decodeError marks an event the store cannot decode.
type decodeError struct{ err error }

func (e *decodeError) Error() string { return e.err.Error() }
func (e *decodeError) Unwrap() error { return e.err }
