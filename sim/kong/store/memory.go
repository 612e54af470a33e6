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
	// Collect the name changes in an overlay over the committed index, so
	// that a violation leaves everything untouched and a write costs what
	// it changes rather than a copy of the whole index. An empty owner in
	// the overlay marks a name freed by this write.
	overlay := map[string]map[string]string{}
	lookup := func(typ, name string) (string, bool) {
		if owner, ok := overlay[typ][name]; ok {
			return owner, owner != ""
		}
		owner, ok := m.names[typ][name]
		return owner, ok
	}
	set := func(typ, name, owner string) {
		if overlay[typ] == nil {
			overlay[typ] = map[string]string{}
		}
		overlay[typ][name] = owner
	}
	unname := func(k Key) {
		if old, ok := m.records[k]; ok && old.Name != "" {
			if owner, held := lookup(k.Type, old.Name); held && owner == k.ID {
				set(k.Type, old.Name, "")
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
		if owner, ok := lookup(r.Type, r.Name); ok && owner != r.ID {
			return 0, &UniqueViolation{Type: r.Type, Name: r.Name, Owner: owner}
		}
		set(r.Type, r.Name, r.ID)
	}
	for _, k := range deletes {
		delete(m.records, k)
	}
	for _, r := range puts {
		r.Body = append([]byte(nil), r.Body...)
		m.records[Key{r.Type, r.ID}] = r
	}
	for typ, changes := range overlay {
		idx := m.names[typ]
		if idx == nil {
			idx = map[string]string{}
			m.names[typ] = idx
		}
		for name, owner := range changes {
			if owner == "" {
				delete(idx, name)
			} else {
				idx[name] = owner
			}
		}
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
