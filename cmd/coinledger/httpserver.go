package main

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// HTTPConfig bounds the API listener's connections, so that slow or idle
// clients (slowloris) cannot hold them; zero fields take the defaults.
type HTTPConfig struct {
	// ReadHeaderTimeout bounds reading a request's headers (default 10s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading a whole request, body included (default 30s).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds a request from the end of its headers to the end
	// of its response (default 60s). The event stream (/events/stream) and
	// websockets (/ws) live longer: they set a deadline per write instead.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout bounds the wait of a keep-alive connection for its next
	// request (default 2m).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// withDefaults returns h with its zero fields set to the defaults.
func (h HTTPConfig) withDefaults() HTTPConfig {
	for _, f := range []struct {
		d   *time.Duration
		def time.Duration
	}{
		{&h.ReadHeaderTimeout, 10 * time.Second},
		{&h.ReadTimeout, 30 * time.Second},
		{&h.WriteTimeout, time.Minute},
		{&h.IdleTimeout, 2 * time.Minute},
	} {
		if *f.d == 0 {
			*f.d = f.def
		}
	}
	return h
}

// validate reports negative timeouts.
func (h HTTPConfig) validate() error {
	var errs []error
	for name, d := range map[string]time.Duration{"read_header_timeout": h.ReadHeaderTimeout,
		"read_timeout": h.ReadTimeout, "write_timeout": h.WriteTimeout, "idle_timeout": h.IdleTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("http.%s: %s is negative", name, d))
		}
	}
	return errors.Join(errs...)
}

// server returns the API's HTTP server for handler, with h's timeouts.
func (h HTTPConfig) server(handler http.Handler) *http.Server {
	h = h.withDefaults()
	return &http.Server{Handler: handler, ReadHeaderTimeout: h.ReadHeaderTimeout, ReadTimeout: h.ReadTimeout,
		WriteTimeout: h.WriteTimeout, IdleTimeout: h.IdleTimeout}
}
