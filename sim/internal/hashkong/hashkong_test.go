package hashkong

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"konductor.dev/sim/kong"
)

func TestSpeaksEnoughAdminAPI(t *testing.T) {
	k := New(nil)
	srv := httptest.NewServer(k)
	defer srv.Close()
	get := func(path string, into any) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if into != nil {
			if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
				t.Fatalf("GET %s: %v", path, err)
			}
		}
		return resp.StatusCode
	}
	var root struct {
		Version       string `json:"version"`
		Configuration struct {
			Database string `json:"database"`
		} `json:"configuration"`
	}
	get("/", &root)
	if root.Version != "3.9.1" || root.Configuration.Database != "off" {
		t.Errorf("GET / = %+v, want version 3.9.1 with database off", root)
	}
	var st struct {
		Hash string `json:"configuration_hash"`
	}
	get("/status", &st)
	if st.Hash != kong.ZeroHash {
		t.Errorf("hash before any push %q, want the zero hash", st.Hash)
	}

	changed := k.Changed()
	body := `{"_format_version":"3.0"}`
	resp, err := http.Post(srv.URL+"/config", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /config: %d", resp.StatusCode)
	}
	select {
	case <-changed:
	default:
		t.Error("Changed was not closed by an accepted push")
	}
	if got, want := k.Hash(), sha256Hex([]byte(body)); got != want {
		t.Errorf("Hash %s, want %s", got, want)
	}
	get("/status", &st)
	if want := sha256Hex([]byte(body))[:32]; st.Hash != want {
		t.Errorf("GET /status hash %q, want %q", st.Hash, want)
	}
	if code := get("/services", nil); code != http.StatusNotFound {
		t.Errorf("GET /services: %d, want 404", code)
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func TestSharedSignalHearsEveryKong(t *testing.T) {
	signal := NewSignal()
	a, b := New(signal), New(signal)
	for _, k := range []*Kong{a, b} {
		changed := signal.C()
		rec := httptest.NewRecorder()
		k.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/config", strings.NewReader(`{}`)))
		if rec.Code != http.StatusCreated {
			t.Fatalf("POST /config: %d", rec.Code)
		}
		select {
		case <-changed:
		default:
			t.Fatal("a push to one Kong did not fire the Signal they share")
		}
	}
	select {
	case <-signal.C():
		t.Fatal("the Signal fired again with no push")
	default:
	}
}
