// Package store defines how a kongsim node persists Admin API entities in
// database mode, so that several nodes can share one configuration. The
// PostgreSQL implementation lives in package pgstore; an in-memory one serves
// tests and simulations.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// Record is one stored entity.
type Record struct {
	// Type is the Admin API collection name: "services", "routes",
	// "upstreams", "targets", "plugins", "consumers", "certificates",
	// "ca_certificates" or "snis".
	Type string
	// ID is the entity's UUID.
	ID string
	// Name is the entity's unique key within Type when it has one (a
	// service's name, a target's "<upstream id>:<target>"), else empty.
	Name string
	// Body is the entity as the Admin API returns it.
	Body json.RawMessage
}

// Key names a stored entity.
type Key struct {
	Type string
	ID   string
}

// ErrUnavailable reports that the database cannot be reached. Nodes keep
// serving what they cached and report database.reachable=false.
var ErrUnavailable = errors.New("database unreachable")

// UniqueViolation is returned by Apply when a put would give two records of
// one Type the same Name.
type UniqueViolation struct {
	Type  string
	Name  string
	Owner string // ID of the record already holding Name
}

func (e *UniqueViolation) Error() string {
	return fmt.Sprintf("UNIQUE violation detected on '%s' %q (held by %s)", e.Type, e.Name, e.Owner)
}

// Backend is the shared database of a group of kongsim nodes.
type Backend interface {
	// Revision returns a counter that grows with every committed Apply.
	Revision(ctx context.Context) (int64, error)
	// Load returns every record and the revision they reflect, read
	// consistently.
	Load(ctx context.Context) ([]Record, int64, error)
	// Apply commits puts (each replacing the record with the same Key) and
	// deletes atomically and returns the new revision. On a
	// *UniqueViolation nothing is written.
	Apply(ctx context.Context, puts []Record, deletes []Key) (int64, error)
	// Ping reports whether the database is reachable.
	Ping(ctx context.Context) error
	// Close releases connections.
	Close() error
}

// Bootstrapper is implemented by backends whose schema must be created
// first, as `kong migrations bootstrap` does. Bootstrap is idempotent.
type Bootstrapper interface {
	Bootstrap(ctx context.Context) error
}
