// Package pgstore keeps kongsim's database-mode entities in PostgreSQL, so
// that several kongsim nodes share one configuration as Kong nodes do.
//
// Every Apply runs in one transaction that first bumps a single revision row.
// That row lock serialises writers, so revisions follow commit order, and a
// node learns about changes by polling that one cheap row (Revision) before
// reloading everything (Load).
//
// Database trouble must surface quickly: nodes keep proxying from their cache
// and report database.reachable=false rather than hang. Connection attempts
// and operations therefore carry short timeouts, and every failure to reach
// the server is reported as a wrapped store.ErrUnavailable.
package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"konductor.dev/sim/kong/store"
)

const (
	// connectTimeout bounds one connection attempt unless the DSN sets
	// connect_timeout.
	connectTimeout = 2 * time.Second
	// opTimeout bounds one store call, retry included.
	opTimeout = 5 * time.Second
	// pingTimeout bounds the liveness check of a connection idle for a while.
	pingTimeout = time.Second
)

// bootstrapLock is the advisory lock key that serialises concurrent
// Bootstrap calls: CREATE ... IF NOT EXISTS races with itself otherwise.
const bootstrapLock = 0x6b6f6e6773696d // "kongsim"

// schema creates the tables. Names are stored as NULL when empty, so the
// plain UNIQUE constraint binds only non-empty names. The constraint is
// deferred to commit so a batch may move a name from one record to another
// in any order; Apply checks names itself before committing.
const schema = `
CREATE TABLE IF NOT EXISTS kongsim_entities (
	type text NOT NULL,
	id   text NOT NULL,
	name text CHECK (name <> ''),
	body jsonb NOT NULL,
	PRIMARY KEY (type, id),
	CONSTRAINT kongsim_entities_type_name_key UNIQUE (type, name) DEFERRABLE INITIALLY DEFERRED
);
CREATE TABLE IF NOT EXISTS kongsim_revision (
	singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
	revision  bigint NOT NULL
);
INSERT INTO kongsim_revision (singleton, revision) VALUES (true, 0) ON CONFLICT DO NOTHING;
`

// Store is a store.Backend on PostgreSQL. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
}

var (
	_ store.Backend      = (*Store)(nil)
	_ store.Bootstrapper = (*Store)(nil)
)

// New returns a Store for the database named by dsn (URL or key=value form).
// It does not connect: a node may start while the database is down, and
// Ping reports when it is. Only a malformed dsn is an error.
func New(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("pgstore: invalid DSN: " + redact(err.Error(), dsn))
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > connectTimeout {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "kongsim"
	}
	cfg.PingTimeout = pingTimeout
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	return &Store{pool: pool}, nil
}

func redact(msg, dsn string) string {
	if dsn == "" {
		return msg
	}
	return strings.ReplaceAll(msg, dsn, "<dsn>")
}

// Bootstrap creates the schema if it does not exist yet, like
// `kong migrations bootstrap`. Concurrent calls are safe.
func (s *Store) Bootstrap(ctx context.Context) error {
	return s.do(ctx, "bootstrap", true, func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(bootstrapLock)); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, schema)
			return err
		})
	})
}

// Revision returns the counter that Apply bumps.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.do(ctx, "read revision", true, func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, `SELECT revision FROM kongsim_revision`).Scan(&rev)
	})
	return rev, err
}

// Load returns every record, ordered by type and id, and the revision they
// reflect, read from one snapshot.
func (s *Store) Load(ctx context.Context) ([]store.Record, int64, error) {
	var (
		records []store.Record
		rev     int64
	)
	err := s.do(ctx, "load", true, func(ctx context.Context) error {
		records, rev = nil, 0
		opts := pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}
		return pgx.BeginTxFunc(ctx, s.pool, opts, func(tx pgx.Tx) error {
			if err := tx.QueryRow(ctx, `SELECT revision FROM kongsim_revision`).Scan(&rev); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT type, id, coalesce(name, ''), body FROM kongsim_entities ORDER BY type, id`)
			if err != nil {
				return err
			}
			records, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Record, error) {
				var r store.Record
				var body []byte
				err := row.Scan(&r.Type, &r.ID, &r.Name, &body)
				r.Body = body
				return r, err
			})
			return err
		})
	})
	if err != nil {
		return nil, 0, err
	}
	return records, rev, nil
}

// Apply applies deletes, then puts, in one transaction and returns the new
// revision, as store.Memory does. A key both deleted and put therefore ends
// up put, and a batch may delete a record and give its name to another.
// When two puts share a key the last one wins. Every Apply, even an empty
// one, commits a new revision. On a *store.UniqueViolation nothing is
// written.
func (s *Store) Apply(ctx context.Context, puts []store.Record, deletes []store.Key) (int64, error) {
	puts = lastPutPerKey(puts)
	for _, p := range puts {
		if p.Type == "" || p.ID == "" {
			return 0, fmt.Errorf("pgstore: record %s/%q: type and id are required", p.Type, p.ID)
		}
		if !json.Valid(p.Body) {
			return 0, fmt.Errorf("pgstore: record %s/%s: body is not valid JSON", p.Type, p.ID)
		}
	}
	var rev int64
	// A retry is safe only when the first attempt failed before COMMIT
	// was sent; applyOnce reports that as a *notCommittedError.
	err := s.do(ctx, "apply", false, func(ctx context.Context) error {
		var err error
		rev, err = s.applyOnce(ctx, puts, deletes)
		return err
	})
	return rev, err
}

// notCommittedError marks a failure before COMMIT was sent, after which
// nothing can have been written (the server rolls back a transaction whose
// connection broke) and a retry is safe.
type notCommittedError struct{ err error }

func (e *notCommittedError) Error() string { return e.err.Error() }
func (e *notCommittedError) Unwrap() error { return e.err }

// applyOnce sends the whole transaction but its COMMIT in one round trip
// (a pipelined batch: BEGIN, the revision bump, the deletes, the puts and
// the name check), then COMMIT, or ROLLBACK when a statement failed or two
// records would share a name: two round trips per write instead of one per
// statement, as a Kong node's writes are a few statements each.
func (s *Store) applyOnce(ctx context.Context, puts []store.Record, deletes []store.Key) (int64, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, &notCommittedError{err}
	}
	defer conn.Release()
	committed := false
	defer func() {
		if committed {
			return
		}
		// Bounded on its own, since ctx may be done. A connection left
		// inside a transaction is closed by the pool on Release.
		rbCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pingTimeout)
		defer cancel()
		_, _ = conn.Exec(rbCtx, "ROLLBACK")
	}()

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	// Taking the revision row's lock first serialises writers: the name
	// check below then sees every earlier commit and races with none.
	var rev int64
	b.Queue(`UPDATE kongsim_revision SET revision = revision + 1 RETURNING revision`).QueryRow(func(row pgx.Row) error {
		return row.Scan(&rev)
	})
	if len(deletes) > 0 {
		types, ids := make([]string, len(deletes)), make([]string, len(deletes))
		for i, d := range deletes {
			types[i], ids[i] = d.Type, d.ID
		}
		b.Queue(`
			DELETE FROM kongsim_entities e
			USING unnest($1::text[], $2::text[]) AS d(type, id)
			WHERE e.type = d.type AND e.id = d.id`, types, ids)
	}
	holders := map[typeName][]string{}
	if len(puts) > 0 {
		n := len(puts)
		types, ids, names, bodies := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		for i, p := range puts {
			types[i], ids[i], names[i], bodies[i] = p.Type, p.ID, p.Name, string(p.Body)
		}
		b.Queue(`
			INSERT INTO kongsim_entities (type, id, name, body)
			SELECT p.type, p.id, nullif(p.name, ''), p.body::jsonb
			FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS p(type, id, name, body)
			ON CONFLICT (type, id) DO UPDATE SET name = excluded.name, body = excluded.body`,
			types, ids, names, bodies)
		queueNameCheck(b, puts, holders)
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return 0, &notCommittedError{err}
	}
	if err := nameClash(puts, holders); err != nil {
		return 0, err
	}
	committed = true
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		return 0, err
	}
	return rev, nil
}

type typeName struct{ typ, name string }

// queueNameCheck queues the query that finds, after the batch's writes,
// every holder of a name the puts claim, so that a clash is reported with
// its owner before the deferred constraint would fail the commit with less
// to say. It fills holders.
func queueNameCheck(b *pgx.Batch, puts []store.Record, holders map[typeName][]string) {
	var types, names []string
	for _, p := range puts {
		if p.Name != "" {
			types, names = append(types, p.Type), append(names, p.Name)
		}
	}
	if len(names) == 0 {
		return
	}
	b.Queue(`
		SELECT e.type, e.name, e.id
		FROM kongsim_entities e
		JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[])) AS p(type, name)
		  ON e.type = p.type AND e.name = p.name`, types, names).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var k typeName
			var id string
			if err := rows.Scan(&k.typ, &k.name, &id); err != nil {
				return err
			}
			holders[k] = append(holders[k], id)
		}
		return rows.Err()
	})
}

// nameClash reports a name held by two records after the batch's writes.
// The owner is a holder the batch did not touch; failing that, the first
// put of the batch that claimed the name, as store.Memory reports.
func nameClash(puts []store.Record, holders map[typeName][]string) error {
	put := make(map[store.Key]bool, len(puts))
	for _, p := range puts {
		put[store.Key{Type: p.Type, ID: p.ID}] = true
	}
	firstClaim := map[typeName]string{}
	for _, p := range puts {
		k := typeName{p.Type, p.Name}
		if p.Name == "" || len(holders[k]) < 2 {
			continue
		}
		for _, id := range holders[k] {
			if !put[store.Key{Type: p.Type, ID: id}] {
				return &store.UniqueViolation{Type: p.Type, Name: p.Name, Owner: id}
			}
		}
		if first, ok := firstClaim[k]; ok {
			return &store.UniqueViolation{Type: p.Type, Name: p.Name, Owner: first}
		}
		firstClaim[k] = p.ID
	}
	return nil
}

// lastPutPerKey drops all but the last put of each key, keeping batch order,
// since one INSERT cannot touch a row twice.
func lastPutPerKey(puts []store.Record) []store.Record {
	last := make(map[store.Key]int, len(puts))
	for i, p := range puts {
		last[store.Key{Type: p.Type, ID: p.ID}] = i
	}
	if len(last) == len(puts) {
		return puts
	}
	out := make([]store.Record, 0, len(last))
	for i, p := range puts {
		if last[store.Key{Type: p.Type, ID: p.ID}] == i {
			out = append(out, p)
		}
	}
	return out
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	return s.do(ctx, "ping", true, func(ctx context.Context) error {
		return s.pool.Ping(ctx)
	})
}

// Close releases all connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// do runs op under the operation timeout and classifies its error. After a
// connection failure it drops every pooled connection, since those opened
// before an outage are dead too, and tries once more on a fresh one when
// idempotent (or when nothing was sent), so the first call after the
// database returns does not fail on a stale connection.
func (s *Store) do(ctx context.Context, what string, idempotent bool, op func(context.Context) error) error {
	opCtx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	err := op(opCtx)
	if err != nil && ctx.Err() == nil && isConnectionFailure(err) {
		s.pool.Reset()
		var nc *notCommittedError
		if idempotent || errors.As(err, &nc) {
			err = op(opCtx)
		}
	}
	return classify(ctx, what, err)
}

func classify(ctx context.Context, what string, err error) error {
	if err == nil {
		return nil
	}
	var uv *store.UniqueViolation
	switch {
	case errors.As(err, &uv):
		return uv
	case ctx.Err() != nil:
		// The caller gave up; that says nothing about the database.
		return fmt.Errorf("pgstore: %s: %w", what, ctx.Err())
	case isConnectionFailure(err):
		return fmt.Errorf("pgstore: %s: %w: %w", what, store.ErrUnavailable, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P01" { // undefined_table
		return fmt.Errorf("pgstore: %s: database needs bootstrapping (run `kongsim migrations bootstrap`): %w", what, err)
	}
	return fmt.Errorf("pgstore: %s: %w", what, err)
}

// isConnectionFailure reports errors that mean the server could not be
// reached or the connection broke, as opposed to the server refusing a
// statement. Bad credentials or a missing database are configuration errors,
// not an outage.
func isConnectionFailure(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection_exception
			pgErr.Code == "57P01", // admin_shutdown
			pgErr.Code == "57P02", // crash_shutdown
			pgErr.Code == "57P03", // cannot_connect_now
			pgErr.Code == "53300": // too_many_connections
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	return errors.As(err, &connectErr) ||
		errors.As(err, &netErr) ||
		pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}
