// Command pgentry is the local process cluster's "postgres" image: the
// entrypoint behaves like the official image's docker-entrypoint for what
// the deploy/ overlays use, on the host's (Debian) PostgreSQL binaries.
//
// As the entrypoint (invoked as docker-entrypoint or pgentry), with the
// image's default arguments ("postgres" or none):
//
//   - run as root, it makes PGDATA (default /var/lib/postgresql/data) owned
//     by the host's postgres user and continues as that user — the image's
//     postgres user (uid 999) is the host's postgres user here; run as
//     another uid, that uid must exist on the host (initdb needs a passwd
//     entry);
//   - if PGDATA holds no cluster, it runs initdb with POSTGRES_USER
//     (default postgres) as superuser and POSTGRES_PASSWORD as its password
//     (required unless POSTGRES_HOST_AUTH_METHOD=trust), trusts local
//     socket connections, authenticates host connections with
//     POSTGRES_HOST_AUTH_METHOD (default scram-sha-256) from any address,
//     and creates POSTGRES_DB (default POSTGRES_USER) on a server reachable
//     only through its socket; POSTGRES_INITDB_ARGS are passed to initdb;
//   - then it runs postgres listening on every address of the pod, port
//     5432 unless the arguments say otherwise, with its socket in PGDATA
//     (the host's /var/run/postgresql is shared by every pod), and stops it
//     with SIGINT on SIGTERM, as the image's STOPSIGNAL does.
//
// Invoked as pg_isready or psql (the image directory links them here), it
// points PGHOST at that socket unless set, then runs the real client, so
// `pg_isready -U kong -d kong` probes work as in the image.
//
// Not done: /docker-entrypoint-initdb.d scripts, POSTGRES_INITDB_WALDIR,
// *_FILE variables.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// clients are the names under which pgentry fronts a PostgreSQL client.
var clients = []string{"pg_isready", "psql"}

func main() {
	name := filepath.Base(os.Args[0])
	var err error
	if slices.Contains(clients, name) {
		err = client(name, os.Args[1:])
	} else {
		err = entrypoint(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "pgentry: %v\n", err)
		os.Exit(1)
	}
}

// binDir finds the host's PostgreSQL server binaries: the newest
// /usr/lib/postgresql/<major>/bin, or $KONDUCTOR_PG_BINDIR.
func binDir() (string, error) {
	if d := os.Getenv("KONDUCTOR_PG_BINDIR"); d != "" {
		return d, nil
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(found) == 0 {
		return "", errors.New("no PostgreSQL server under /usr/lib/postgresql/*/bin (install it: hack/postgres.sh install)")
	}
	major := func(p string) int {
		n, _ := strconv.Atoi(filepath.Base(filepath.Dir(filepath.Dir(p))))
		return n
	}
	sort.Slice(found, func(i, j int) bool { return major(found[i]) < major(found[j]) })
	return filepath.Dir(found[len(found)-1]), nil
}

func pgdata() string {
	if d := os.Getenv("PGDATA"); d != "" {
		return d
	}
	return "/var/lib/postgresql/data"
}

func client(name string, args []string) error {
	bin, err := binDir()
	if err != nil {
		return err
	}
	env := os.Environ()
	if os.Getenv("PGHOST") == "" {
		env = append(env, "PGHOST="+pgdata())
	}
	path := filepath.Join(bin, name)
	return syscall.Exec(path, append([]string{path}, args...), env)
}

func entrypoint(args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		args = append([]string{"postgres"}, args...)
	}
	if args[0] != "postgres" {
		// Like the image: any other command runs as given.
		path, err := exec.LookPath(args[0])
		if err != nil {
			return err
		}
		return syscall.Exec(path, args, os.Environ())
	}
	bin, err := binDir()
	if err != nil {
		return err
	}
	data := pgdata()
	if os.Geteuid() == 0 {
		if err := becomePostgres(data); err != nil {
			return err
		}
	} else if _, err := user.LookupId(strconv.Itoa(os.Geteuid())); err != nil {
		return fmt.Errorf("uid %d has no entry in this host's /etc/passwd, which initdb and postgres need; the image's postgres user is the host's postgres user here: leave runAsUser unset (the entrypoint switches to it) or set it to that user's uid", os.Geteuid())
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	if err := os.Chmod(data, 0o700); err != nil {
		return fmt.Errorf("PGDATA %s: %w", data, err)
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); errors.Is(err, os.ErrNotExist) {
		if err := initialise(bin, data); err != nil {
			return err
		}
	} else if err != nil {
		return err
	} else {
		fmt.Println("pgentry: PostgreSQL database directory appears to contain a database; skipping initialization")
	}
	postgres := filepath.Join(bin, "postgres")
	argv := append([]string{"-D", data, "-c", "listen_addresses=*", "-c", "unix_socket_directories=" + data}, args[1:]...)
	return supervise(exec.Command(postgres, argv...))
}

// supervise runs the server and passes signals on, turning SIGTERM into
// SIGINT: the image's STOPSIGNAL is SIGINT, PostgreSQL's fast shutdown,
// where SIGTERM would wait for every client to disconnect. It exits with
// the server's status.
func supervise(cmd *exec.Cmd) error {
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			if sig == syscall.SIGTERM {
				sig = syscall.SIGINT
			}
			_ = cmd.Process.Signal(sig)
		case err := <-done:
			var exit *exec.ExitError
			if errors.As(err, &exit) {
				os.Exit(exit.ExitCode())
			}
			return err
		}
	}
}

// becomePostgres hands PGDATA (and its parent if we made it) to the host's
// postgres user and switches to it for good.
func becomePostgres(data string) error {
	u, err := user.Lookup("postgres")
	if err != nil {
		return fmt.Errorf("the host has no postgres user (install PostgreSQL: hack/postgres.sh install): %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	// As the image does: give the postgres user whatever in PGDATA is not
	// yet its own.
	err = filepath.Walk(data, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid {
			return nil
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return fmt.Errorf("chown PGDATA %s: %w", data, err)
	}
	if err := syscall.Setgroups(nil); err != nil {
		return err
	}
	if err := syscall.Setgid(gid); err != nil {
		return err
	}
	if err := syscall.Setuid(uid); err != nil {
		return err
	}
	return os.Setenv("HOME", u.HomeDir)
}

// initialise creates the cluster, the superuser's password and the
// database, as the image's docker_init_database_dir and
// docker_setup_db do.
func initialise(bin, data string) error {
	superuser := envOr("POSTGRES_USER", "postgres")
	db := envOr("POSTGRES_DB", superuser)
	password := os.Getenv("POSTGRES_PASSWORD")
	auth := envOr("POSTGRES_HOST_AUTH_METHOD", "scram-sha-256")
	if password == "" && auth != "trust" {
		return errors.New("database is uninitialized and superuser password is not specified: set POSTGRES_PASSWORD (or POSTGRES_HOST_AUTH_METHOD=trust)")
	}
	pwfile, err := os.CreateTemp("", "pgentry-pw")
	if err != nil {
		return err
	}
	defer os.Remove(pwfile.Name())
	if _, err := fmt.Fprintln(pwfile, password); err != nil {
		return err
	}
	if err := pwfile.Close(); err != nil {
		return err
	}
	initdb := []string{"--username=" + superuser, "--pgdata=" + data, "--auth-local=trust", "--auth-host=" + auth}
	if password != "" {
		initdb = append(initdb, "--pwfile="+pwfile.Name())
	}
	initdb = append(initdb, strings.Fields(os.Getenv("POSTGRES_INITDB_ARGS"))...)
	if err := run(filepath.Join(bin, "initdb"), initdb...); err != nil {
		return err
	}
	hba, err := os.OpenFile(filepath.Join(data, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(hba, "\n# pgentry: any address, as the postgres image\nhost all all all %s\n", auth)
	if cerr := hba.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}

	// A server reachable only through its socket while the database is
	// created, so clients never see a half-set-up cluster.
	pgctl := filepath.Join(bin, "pg_ctl")
	opts := "-c listen_addresses='' -c unix_socket_directories=" + data
	if err := run(pgctl, "-D", data, "-o", opts, "-w", "start"); err != nil {
		return err
	}
	if db != "postgres" {
		sql := `CREATE DATABASE "` + strings.ReplaceAll(db, `"`, `""`) + `"`
		if err := run(filepath.Join(bin, "psql"), "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-h", data, "-U", superuser, "-d", "postgres", "-c", sql); err != nil {
			_ = run(pgctl, "-D", data, "-m", "fast", "-w", "stop")
			return err
		}
	}
	if err := run(pgctl, "-D", data, "-m", "fast", "-w", "stop"); err != nil {
		return err
	}
	fmt.Println("pgentry: PostgreSQL init process complete; ready for start up")
	return nil
}

func run(path string, args ...string) error {
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", filepath.Base(path), strings.Join(args, " "), err)
	}
	return nil
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
