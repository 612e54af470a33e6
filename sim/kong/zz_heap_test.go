package kong_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"testing"

	sim "konductor.dev/sim/kong"
)

func TestZZHeap(t *testing.T) {
	docs := [2][]byte{appsConfig(5000, "/"), appsConfig(5000, "/v2")}
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	n, _ := sim.NewNode(sim.Options{Logger: quietLogger()})
	client := &http.Client{Transport: sim.NewInMemoryTransport(n.Admin())}
	for i := 0; i < 3; i++ {
		resp, _ := client.Post("http://kong:8001/config", "application/json", bytes.NewReader(docs[i%2]))
		io.Copy(io.Discard, resp.Body)
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	t.Logf("live heap per node: %.1f MB, objects %d", float64(m1.HeapAlloc-m0.HeapAlloc)/1e6, m1.HeapObjects-m0.HeapObjects)
	f, _ := os.Create("/tmp/fanout/heap.prof")
	pprof.WriteHeapProfile(f)
	f.Close()
	runtime.KeepAlive(n)
	runtime.KeepAlive(docs)
}
