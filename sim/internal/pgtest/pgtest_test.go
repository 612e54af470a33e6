package pgtest

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestDSNGivesEachTestAFreshDatabaseAndDropsIt(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var first, second string
	ok := t.Run("inner", func(t *testing.T) {
		first = databaseOf(t, DSN(t))
		conn := connect(t, ctx, DSN(t))
		if _, err := conn.Exec(ctx, `CREATE TABLE leftover (x int)`); err != nil {
			t.Fatal(err)
		}
		second = databaseOf(t, DSN(t))
		if first == second {
			t.Fatalf("two calls gave the same database %q", first)
		}
	})
	if !ok {
		return
	}
	if first == "" {
		t.Skip("the inner test was skipped")
	}

	admin := connect(t, ctx, adminDSN)
	for _, name := range []string{first, second} {
		var exists bool
		if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			t.Errorf("database %s still exists after its test ended", name)
		}
	}
}

func TestParseDSNRejectsKeywordForm(t *testing.T) {
	if _, err := ParseDSN("host=127.0.0.1 port=5432"); err == nil {
		t.Fatal("ParseDSN accepted a keyword/value DSN it cannot split")
	}
}

func databaseOf(t *testing.T, dsn string) string {
	t.Helper()
	p, err := ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return p.Database
}

func connect(t *testing.T, ctx context.Context, dsn string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}
