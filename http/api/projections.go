package api

import (
	"net/http"
	"time"

	"github.com/coinledger/coinledger/projections"
	"github.com/labstack/echo/v4"
)

// readModel is a read model's entry in GET /api/v1/projections.
type readModel struct {
	Name     string `json:"name"`
	Version  int    `json:"version"`
	State    string `json:"state"`
	Position uint64 `json:"position"`
	Head     uint64 `json:"head"`
	Lag      uint64 `json:"lag"`
	// RebuildJob is the id of the rebuild in progress.
	RebuildJob string `json:"rebuild_job,omitempty"`
}

type readModelList struct {
	Projections []readModel `json:"projections"`
}

// rebuildJob is a blue/green rebuild of a read model.
type rebuildJob struct {
	ID              string     `json:"id"`
	Projection      string     `json:"projection"`
	State           string     `json:"state"`
	Reason          string     `json:"reason"`
	Position        uint64     `json:"position"`
	Head            uint64     `json:"head"`
	Events          uint64     `json:"events"`
	EventsPerSecond uint64     `json:"events_per_second"`
	StartedAt       time.Time  `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at,omitempty"`
	Error           string     `json:"error,omitempty"`
}

type rebuildJobList struct {
	Jobs []rebuildJob `json:"jobs"`
}

func rebuildJobOf(j projections.Job) rebuildJob {
	out := rebuildJob{ID: j.ID, Projection: j.Projection, State: string(j.State), Reason: j.Reason,
		Position: j.Position, Head: j.Head, Events: j.Events, EventsPerSecond: j.EventsPerSecond,
		StartedAt: j.StartedAt, Error: j.Error}
	if !j.FinishedAt.IsZero() {
		out.FinishedAt = &j.FinishedAt
	}
	return out
}

// listReadModels lists the read models with their code version, state,
// position and lag (admin).
func (h *handlers) listReadModels(c echo.Context) error {
	models, err := h.d.Runner.ReadModels(c.Request().Context())
	if err != nil {
		return err
	}
	out := readModelList{Projections: make([]readModel, len(models))}
	for i, m := range models {
		out.Projections[i] = readModel{Name: m.Name, Version: m.Version, State: string(m.State), Position: m.Position,
			Head: m.Head, Lag: m.Lag, RebuildJob: m.Rebuild}
	}
	return c.JSON(http.StatusOK, out)
}

// rebuildProjection starts a blue/green rebuild of a read model (admin):
// 202 with the job and its Location.
func (h *handlers) rebuildProjection(c echo.Context) error {
	j, err := h.d.Runner.Rebuild(c.Param("name"))
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/api/v1/projections/jobs/"+j.ID)
	return c.JSON(http.StatusAccepted, rebuildJobOf(j))
}

// getRebuildJob shows a rebuild job's progress (admin).
func (h *handlers) getRebuildJob(c echo.Context) error {
	j, err := h.d.Runner.Job(c.Param("id"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, rebuildJobOf(j))
}

// listRebuildJobs lists this process's rebuild jobs, oldest first (admin).
func (h *handlers) listRebuildJobs(c echo.Context) error {
	jobs := h.d.Runner.Jobs()
	out := rebuildJobList{Jobs: make([]rebuildJob, len(jobs))}
	for i, j := range jobs {
		out.Jobs[i] = rebuildJobOf(j)
	}
	return c.JSON(http.StatusOK, out)
}
