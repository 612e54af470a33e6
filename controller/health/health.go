// Package health serves the liveness and readiness probes as http.Handlers;
// the program's main mounts them on its own listener.
//
// A Check is a named function that returns nil when its condition holds.
// Liveness (/healthz) only proves the process answers. Readiness (/readyz)
// runs every check and answers 503 with the failing reasons otherwise; what
// the controller's readiness checks mean is documented where they are
// defined (package manager).
package health

import (
	"fmt"
	"net/http"
	"strings"
)

// Check reports nil when healthy, or why not.
type Check struct {
	Name string
	Func func() error
}

// Livez answers 200 "ok" as long as the process serves HTTP.
func Livez() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
}

// Readyz answers 200 when every check passes, else 503. The body lists each
// check as "[+]name ok" or "[-]name: reason", so a kubectl describe of a
// failing probe says why.
func Readyz(checks ...Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		var b strings.Builder
		ready := true
		for _, c := range checks {
			if err := c.Func(); err != nil {
				ready = false
				fmt.Fprintf(&b, "[-]%s: %v\n", c.Name, err)
			} else {
				fmt.Fprintf(&b, "[+]%s ok\n", c.Name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			b.WriteString("not ready\n")
		} else {
			b.WriteString("ready\n")
		}
		fmt.Fprint(w, b.String())
	})
}

// Mux returns a ServeMux with /healthz and /readyz.
func Mux(checks ...Check) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/healthz", Livez())
	mux.Handle("/readyz", Readyz(checks...))
	return mux
}
