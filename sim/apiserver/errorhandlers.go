package apiserver

import (
	"context"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/klog/v2"
)

// client-go reports errors it cannot return (a reflector's failed list or
// watch, for one) through utilruntime.ErrorHandlers. The default list
// rate-limits them with a process-wide backoff that remembers the wall time
// of the last error, first set from the real clock when the package starts.
// Under testing/synctest every bubble's clock starts at 2000-01-01, so the
// first error inside a bubble measures "time since the last error" as about
// minus 27 years and the reporting goroutine sleeps that long. That sleep
// ignores its context: the reflector never returns, and neither does the
// informer factory's Shutdown nor the manager. Later errors would carry the
// time of one bubble into the next, making a seed's run depend on the
// seeds before it.
//
// Every controller that talks to this server runs under virtual time, so
// the package keeps the log handler and drops the backoff (the reflector has
// its own, bubble-local, retry backoff). It is done at package start,
// before any informer can read the list.
func init() { utilruntime.ErrorHandlers = []utilruntime.ErrorHandler{logUnhandledError} }

// logUnhandledError logs as client-go's own first handler does.
func logUnhandledError(ctx context.Context, err error, msg string, keysAndValues ...any) {
	klog.LoggerWithName(klog.FromContext(ctx), "UnhandledError").Error(err, msg, keysAndValues...)
}
