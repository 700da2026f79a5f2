package eventstore

// Queued returns how many commands wait in the queue of stream's writer
// (0 when it has none), for tests that must line commands up in one batch.
func (b *Batcher[S, E]) Queued(stream string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w, ok := b.writers[stream]; ok {
		return len(w.queue)
	}
	return 0
}
