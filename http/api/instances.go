package api

import (
	"context"
	"slices"
	"time"

	"github.com/coinledger/coinledger/projections"
)

// instanceJSON is an instance in the status: its id, version, the roles
// (singleton workers) it leads and its last heartbeat.
type instanceJSON struct {
	ID        string    `json:"id"`
	Version   string    `json:"version"`
	Roles     []string  `json:"roles"`
	Heartbeat time.Time `json:"heartbeat"`
}

func instanceOf(in projections.Instance) instanceJSON {
	roles := in.Roles
	if roles == nil {
		roles = []string{}
	}
	return instanceJSON{ID: in.ID, Version: in.Version, Roles: roles, Heartbeat: in.Heartbeat.UTC()}
}

// instances returns this instance and every live one, sorted by id.
func (h *handlers) instances(ctx context.Context) (instanceJSON, []instanceJSON, error) {
	el := h.d.elector()
	all, err := el.Instances(ctx)
	if err != nil {
		return instanceJSON{}, nil, err
	}
	out := make([]instanceJSON, len(all))
	for i, in := range all {
		out[i] = instanceOf(in)
	}
	return instanceOf(el.Self()), out, nil
}

// elector returns d.Elector, or for none this process alone.
func (d Deps) elector() projections.Elector {
	if d.Elector == nil {
		return projections.NewSolo("local", d.Version)
	}
	return d.Elector
}

// leaderElsewhere returns the id of another live instance that leads role,
// "" when none does (this one may, or none yet).
func (h *handlers) leaderElsewhere(ctx context.Context, role string) string {
	el := h.d.elector()
	all, err := el.Instances(ctx)
	if err != nil {
		return ""
	}
	self := el.Self().ID
	for _, in := range all {
		if in.ID != self && slices.Contains(in.Roles, role) {
			return in.ID
		}
	}
	return ""
}
