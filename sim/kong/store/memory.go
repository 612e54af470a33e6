package store

import (
	"context"
	"sort"
	"sync"
)

// Memory is an in-memory Backend shared by the nodes of one simulation. It
// can be made unavailable to simulate a database outage.
type Memory struct {
	mu      sync.Mutex
	records map[Key]Record
	names   map[string]map[string]string // type -> name -> id
	rev     int64
	down    bool
}

var _ Backend = (*Memory)(nil)

// NewMemory returns an empty, available in-memory backend.
func NewMemory() *Memory {
	return &Memory{records: map[Key]Record{}, names: map[string]map[string]string{}}
}

// SetAvailable switches the simulated database on or off; while off every
// call fails with ErrUnavailable.
func (m *Memory) SetAvailable(up bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.down = !up
}

func (m *Memory) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.down {
		return ErrUnavailable
	}
	return nil
}

// Revision implements Backend.
func (m *Memory) Revision(ctx context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	return m.rev, nil
}

// Load implements Backend; records come sorted by type and id.
func (m *Memory) Load(ctx context.Context) ([]Record, int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return nil, 0, err
	}
	out := make([]Record, 0, len(m.records))
	for _, r := range m.records {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Type != out[j].Type {
			return out[i].Type < out[j].Type
		}
		return out[i].ID < out[j].ID
	})
	return out, m.rev, nil
}

// Apply implements Backend.
func (m *Memory) Apply(ctx context.Context, puts []Record, deletes []Key) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx); err != nil {
		return 0, err
	}
	// Work on copies of the affected name indexes so that a violation
	// leaves everything untouched.
	names := map[string]map[string]string{}
	index := func(typ string) map[string]string {
		if idx, ok := names[typ]; ok {
			return idx
		}
		idx := make(map[string]string, len(m.names[typ]))
		for k, v := range m.names[typ] {
			idx[k] = v
		}
		names[typ] = idx
		return idx
	}
	unname := func(k Key) {
		if old, ok := m.records[k]; ok && old.Name != "" {
			idx := index(k.Type)
			if idx[old.Name] == k.ID {
				delete(idx, old.Name)
			}
		}
	}
	for _, k := range deletes {
		unname(k)
	}
	for _, r := range puts {
		unname(Key{r.Type, r.ID})
	}
	for _, r := range puts {
		if r.Name == "" {
			continue
		}
		idx := index(r.Type)
		if owner, ok := idx[r.Name]; ok && owner != r.ID {
			return 0, &UniqueViolation{Type: r.Type, Name: r.Name, Owner: owner}
		}
		idx[r.Name] = r.ID
	}
	for _, k := range deletes {
		delete(m.records, k)
	}
	for _, r := range puts {
		r.Body = append([]byte(nil), r.Body...)
		m.records[Key{r.Type, r.ID}] = r
	}
	for typ, idx := range names {
		m.names[typ] = idx
	}
	m.rev++
	return m.rev, nil
}

// Ping implements Backend.
func (m *Memory) Ping(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.check(ctx)
}

// Close implements Backend; the data stays for other holders.
func (m *Memory) Close() error { return nil }
