package eventstore

import "testing"

// TestSnapshotIntervalGrowsWithTheStream: short streams are snapshotted
// every `every` events; long ones at a spacing within a quarter of their
// length, so the snapshot work per event stays bounded as a state grows.
func TestSnapshotIntervalGrowsWithTheStream(t *testing.T) {
	for _, tc := range []struct{ length, want uint64 }{
		{1, 1000}, {5050, 1000}, {7999, 1000}, {8000, 2000}, {16000, 4000}, {100_500, 16000},
		{1_000_000, 128000},
	} {
		n := interval(1000, tc.length)
		if tc.length >= 8000 && (n > tc.length/4 || n <= tc.length/16) {
			t.Errorf("interval(1000, %d) = %d: not within (length/16, length/4]", tc.length, n)
		}
		if tc.want != 0 && n != tc.want {
			t.Errorf("interval(1000, %d) = %d, want %d", tc.length, n, tc.want)
		}
		if n%1000 != 0 {
			t.Errorf("interval(1000, %d) = %d: not a multiple of every", tc.length, n)
		}
	}
	// Saves per 1,000,000 events stay logarithmic, not 1,000.
	saves := 0
	for v := uint64(0); v < 1_000_000; v += 37 {
		sn := &snapshots[int]{cfg: Snapshotter[int]{Every: 1000}}
		if sn.due(v, v+37) {
			saves++
		}
	}
	if saves > 200 {
		t.Errorf("%d snapshots over 1,000,000 events", saves)
	}
}
