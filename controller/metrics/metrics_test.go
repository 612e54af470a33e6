package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestObserve(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := NewTranslation(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(3*time.Millisecond, time.Unix(1700000000, 0), 2, 5)
	if got := testutil.ToFloat64(m.BrokenObjects); got != 2 {
		t.Errorf("broken objects %v", got)
	}
	if got := testutil.ToFloat64(m.LastTimestamp); got != 1700000000 {
		t.Errorf("timestamp %v", got)
	}
	if n := testutil.CollectAndCount(m.Duration); n != 1 {
		t.Errorf("histogram series %d", n)
	}
	if _, err := NewTranslation(reg); err == nil {
		t.Error("registering twice on one registry must fail")
	}
}
