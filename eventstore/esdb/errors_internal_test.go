package esdb

import (
	"errors"
	"fmt"
	"testing"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/coinledger/coinledger/eventstore"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestTranslate(t *testing.T) {
	tooLarge := status.Error(codes.InvalidArgument, "Maximum Append Size of 1048576 Exceeded.")
	// The client wraps its errors, and esdb.FromError does not unwrap.
	wrapped := fmt.Errorf("could not send append request. Reason: %w", tooLarge)
	if e, ok := esdb.FromError(nil); !ok || e != nil {
		t.Fatalf("FromError(nil) = %v, %v: the inverted flag changed", e, ok)
	}
	for _, err := range []error{tooLarge, wrapped} {
		if got := translate(err); !errors.Is(got, eventstore.ErrInvalidEvent) {
			t.Errorf("translate(%v) = %v, want ErrInvalidEvent", err, got)
		}
	}
	other := status.Error(codes.Unavailable, "down")
	if got := translate(other); got != other {
		t.Errorf("translate(%v) = %v, want it unchanged", other, got)
	}
	if translate(nil) != nil {
		t.Error("translate(nil) != nil")
	}
}

func TestPermanent(t *testing.T) {
	for err, want := range map[error]bool{
		status.Error(codes.Unavailable, "down"):                             false,
		fmt.Errorf("dropped: %w", status.Error(codes.Canceled, "x")):        false,
		status.Error(codes.PermissionDenied, "Access Denied"):               true,
		fmt.Errorf("x: %w", status.Error(codes.InvalidArgument, "bad pos")): true,
		&decodeError{errors.New("bad metadata")}:                            true,
		errors.New("something else"):                                        false,
	} {
		if got := permanent(err); got != want {
			t.Errorf("permanent(%v) = %v, want %v", err, got, want)
		}
	}
}
