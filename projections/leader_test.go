package projections_test

import (
	"testing"

	"github.com/coinledger/coinledger/projections"
	"github.com/coinledger/coinledger/projections/electortest"
)

func TestSoloConformance(t *testing.T) {
	electortest.Run(t, func(*testing.T) projections.Elector { return projections.NewSolo("solo", "test") })
}
