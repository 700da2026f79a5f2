package expiry

import "time"

// Pending returns the holds s would expire, as "wallet/id" → when due.
func Pending(s *Scheduler) map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.pending))
	for h, e := range s.pending {
		out[h.wallet+"/"+h.id] = e.at
	}
	return out
}
