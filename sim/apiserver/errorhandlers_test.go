package apiserver

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/informers"
)

// An informer whose lists fail (a partitioned client) must still stop
// promptly: client-go reports the failure through utilruntime.HandleError,
// whose default backoff, under virtual time, slept for decades and kept the
// informer factory's Shutdown waiting (nemesis seed 266).
func TestInformerFactoryShutsDownAfterFailedListsUnderSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		s := New(1)
		s.SetFaults("r1", Faults{Partitioned: true})
		f := informers.NewSharedInformerFactoryWithOptions(s.Client("r1"), 0, informers.WithNamespace("ns"))
		f.Core().V1().ConfigMaps().Informer()
		f.Start(ctx.Done())
		synctest.Wait()
		if s.Fired("r1")[FiredPartition] == 0 {
			t.Fatal("the informer's list did not reach the partitioned client")
		}

		cancel()
		stopped := make(chan struct{})
		go func() { defer close(stopped); f.Shutdown() }()
		select {
		case <-stopped:
		case <-time.After(time.Minute):
			t.Error("informer factory Shutdown did not return within a virtual minute after a failed list")
			<-stopped // lets the bubble end instead of deadlocking
		}
	})
}

// Reporting an error in one bubble must not delay a report in the next:
// every bubble's clock starts at the same instant, so shared "last error"
// state would make a seed's run depend on the runs before it.
func TestHandleErrorDoesNotCarryTimeAcrossBubbles(t *testing.T) {
	err := errors.New("list failed")
	synctest.Test(t, func(t *testing.T) {
		time.Sleep(time.Hour)
		utilruntime.HandleError(err)
	})
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		utilruntime.HandleError(err)
		if waited := time.Since(start); waited != 0 {
			t.Errorf("HandleError slept %v of virtual time", waited)
		}
	})
}
