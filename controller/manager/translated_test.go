package manager

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// openTerm waits on the first translation: the wait ends when it happens
// (and not before, however long it takes), at once when it already has,
// and when the context ends first; later translations change nothing.
func TestWaitTranslated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &Manager{translated: make(chan struct{})}
		if m.isTranslated() {
			t.Fatal("translated before any translation")
		}

		cancelled, cancel := context.WithCancel(t.Context())
		cancel()
		if m.waitTranslated(cancelled) {
			t.Fatal("waitTranslated reported a translation when its context ended first")
		}

		got := make(chan bool, 1)
		go func() { got <- m.waitTranslated(t.Context()) }()
		time.Sleep(time.Hour)
		synctest.Wait()
		select {
		case v := <-got:
			t.Fatalf("waitTranslated returned %v before the first translation", v)
		default:
		}

		m.markTranslated()
		synctest.Wait()
		select {
		case v := <-got:
			if !v {
				t.Fatal("waitTranslated reported false after the first translation")
			}
		default:
			t.Fatal("waitTranslated still waits after the first translation")
		}

		m.markTranslated() // a second translation must not close the channel again
		if !m.isTranslated() || !m.waitTranslated(t.Context()) {
			t.Fatal("not translated after two translations")
		}
	})
}
