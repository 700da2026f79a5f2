package alerting

import "time"

// SetRetry sets how often the engine tries to trigger one alert on one tick
// and the first backoff.
func SetRetry(e *Engine, attempts int, backoff time.Duration) {
	e.attempts, e.backoff = attempts, backoff
}
