// Package pgtest gives tests a PostgreSQL database of their own and a way to
// cut it off.
//
// DSN starts the repository's shared test server (hack/postgres.sh start) on
// first use and creates a fresh database per test, dropped when the test
// ends, so test packages running in parallel never see each other's data.
// When the server cannot be started the test is skipped with a loud message,
// except under CI=true, where it fails: CI must not go green by skipping.
//
// NewProxy puts a loopback TCP forwarder in front of the server so a test can
// simulate a database outage without stopping the server other packages use.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// dbPrefix marks databases made by this package; the owning process's pid
// follows it, so databases left by a killed test run can be recognised.
const dbPrefix = "pgtest_"

var (
	serverOnce sync.Once
	adminDSN   string // the kong role on the kong database
	serverErr  error
	dbCounter  atomic.Int64
)

// DSN returns the DSN of a new, empty database that is dropped when t ends.
// The role owns the database and may create further databases.
func DSN(t testing.TB) string {
	t.Helper()
	serverOnce.Do(func() { adminDSN, serverErr = startServer() })
	if serverErr != nil {
		msg := "\n" + strings.Repeat("!", 72) +
			"\n!! PostgreSQL is not available, so this DB-mode test cannot run." +
			"\n!! Try: hack/postgres.sh start" +
			"\n!! " + strings.ReplaceAll(serverErr.Error(), "\n", "\n!! ") +
			"\n" + strings.Repeat("!", 72)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}

	name := fmt.Sprintf("%s%d_%d_%s", dbPrefix, os.Getpid(), dbCounter.Add(1), sanitize(t.Name()))
	if len(name) > 63 { // PostgreSQL's identifier limit
		name = name[:63]
	}
	if err := adminExec(context.Background(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// FORCE ends sessions a test left open, such as those of a killed node.
		if err := adminExec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	dsn, err := withDatabase(adminDSN, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return dsn
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

func sanitize(testName string) string {
	return strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(testName), "_"), "_")
}

func withDatabase(dsn, database string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("hack/postgres.sh dsn printed %q, want a postgres:// URL", dsn)
	}
	u.Path = "/" + database
	return u.String(), nil
}

// startServer runs hack/postgres.sh start, returns the admin DSN, and drops
// databases whose test process is gone.
func startServer() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, "hack", "postgres.sh")
	// Installing PostgreSQL with apt-get on a fresh machine takes a while.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, script, "start").CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s start: %v\n%s", script, err, bytes.TrimSpace(out))
	}
	out, err := exec.CommandContext(ctx, script, "dsn").Output()
	if err != nil {
		return "", fmt.Errorf("%s dsn: %v", script, err)
	}
	dsn := strings.TrimSpace(string(out))
	adminDSN = dsn // adminExec reads it
	if err := dropOrphans(ctx); err != nil {
		return "", fmt.Errorf("pgtest: dropping databases of finished test runs: %w", err)
	}
	return dsn, nil
}

// repoRoot walks up from the working directory (the package under test) to
// the directory holding go.work.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no go.work above %s, so hack/postgres.sh cannot be found", dir)
		}
	}
}

func dropOrphans(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE starts_with(datname, $1)`, dbPrefix)
	if err != nil {
		return err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return err
	}
	for _, name := range names {
		pidText, _, _ := strings.Cut(strings.TrimPrefix(name, dbPrefix), "_")
		pid, err := strconv.Atoi(pidText)
		if err != nil || processAlive(pid) {
			continue
		}
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			return err
		}
	}
	return nil
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// adminExec runs one statement on a connection of its own: CREATE and DROP
// DATABASE cannot share a transaction, and a test package should hold no
// connection it does not need.
func adminExec(ctx context.Context, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, sql)
	return err
}

// Params are the parts of a DSN that Kong takes as KONG_PG_* settings.
type Params struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
}

// ParseDSN splits a postgres:// URL into Params.
func ParseDSN(dsn string) (Params, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return Params{}, fmt.Errorf("pgtest: DSN %q is not a postgres:// URL", dsn)
	}
	port := 5432
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil {
			return Params{}, fmt.Errorf("pgtest: DSN %q: bad port %q", dsn, p)
		}
	}
	pw, _ := u.User.Password()
	return Params{
		Host:     u.Hostname(),
		Port:     port,
		User:     u.User.Username(),
		Password: pw,
		Database: strings.TrimPrefix(u.Path, "/"),
	}, nil
}

// KongEnv returns the settings as KONG_PG_* environment entries.
func (p Params) KongEnv() []string {
	return []string{
		"KONG_PG_HOST=" + p.Host,
		"KONG_PG_PORT=" + strconv.Itoa(p.Port),
		"KONG_PG_USER=" + p.User,
		"KONG_PG_PASSWORD=" + p.Password,
		"KONG_PG_DATABASE=" + p.Database,
	}
}
