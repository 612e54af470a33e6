package kong

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"testing"
	"testing/iotest"
)

// The body of a successful POST /config is rendered a chunk at a time
// (loadedBody). These tests hold every way of reading it to the same bytes.

func TestLoadedBodyReadsAsWritten(t *testing.T) {
	for _, services := range []int{0, 2, 40, 300} {
		t.Run(strconv.Itoa(services), func(t *testing.T) {
			st := emptyState()
			if services > 0 {
				var err error
				st, err = ParseDeclarative(genModel(rand.New(rand.NewPCG(7, uint64(services))), services).json(), 1_700_000_000)
				if err != nil {
					t.Fatal(err)
				}
			}
			want := loadedEntities(st)
			if len(want) != loadedEntitiesSize(st) {
				t.Fatalf("rendered %d bytes, size says %d", len(want), loadedEntitiesSize(st))
			}
			var doc map[string]map[string]json.RawMessage
			if err := json.Unmarshal(want, &doc); err != nil {
				t.Fatalf("not JSON: %v", err)
			}
			n := 0
			for _, c := range collections {
				n += len(doc[c])
			}
			if n != st.Count() || len(doc) != len(collections) {
				t.Fatalf("%d entities in %d collections, want %d in %d", n, len(doc), st.Count(), len(collections))
			}
			if services == 300 && len(want) < 3*loadedChunk {
				t.Fatalf("a %d-byte body crosses too few chunks to test them", len(want))
			}
			// Reads of every size, including one byte at a time, and
			// io.Reader conformance.
			for _, size := range []int{1, 7, 4096, loadedChunk + 1, 1 << 20} {
				got, err := io.ReadAll(io.LimitReader(newLoadedBody(st), 1<<30))
				if size == 1 {
					got, err = io.ReadAll(iotest.OneByteReader(newLoadedBody(st)))
				} else if size != 1<<20 {
					got, err = readInPieces(newLoadedBody(st), size)
				}
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("read in %d-byte pieces: %v; %d bytes differ from the %d written", size, err, len(got), len(want))
				}
			}
			if err := iotest.TestReader(newLoadedBody(st), want); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func readInPieces(r io.Reader, size int) ([]byte, error) {
	var out []byte
	buf := make([]byte, size)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestInMemoryTransportDefersLoadedBody: through the in-memory transport,
// whose recorder takes the body as a reader, a client reads the same
// answer, with the same Content-Length, as a client of a real server.
func TestInMemoryTransportDefersLoadedBody(t *testing.T) {
	clock := &reuseClock{}
	n := newReuseNode(t, clock)
	doc := genModel(rand.New(rand.NewPCG(1, 2)), 300).json()
	req, err := http.NewRequest(http.MethodPost, "http://kong:8001/config", bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := NewInMemoryTransport(n.Admin()).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /config: %d %v", resp.StatusCode, err)
	}
	want := loadedEntities(n.Config())
	if !bytes.Equal(got, want) || resp.ContentLength != int64(len(want)) || resp.Header.Get("Content-Length") != strconv.Itoa(len(want)) {
		t.Fatalf("body of %d bytes (Content-Length %d, header %q), want the %d of loadedEntities", len(got), resp.ContentLength, resp.Header.Get("Content-Length"), len(want))
	}
	// The same document answered by the plain ResponseWriter path.
	code, plain := request(t, newReuseNode(t, clock), http.MethodPost, "/config", doc)
	if code != http.StatusCreated || !bytes.Equal(plain, want) {
		t.Fatalf("a recorder got %d and %d bytes; the transport's client %d bytes", code, len(plain), len(want))
	}
}
