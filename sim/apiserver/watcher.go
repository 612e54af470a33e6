package apiserver

import (
	"sync"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
)

// watcher is one open watch. Its queue is unbounded (the fake's default
// watcher panics after 100 undelivered events), and one goroutine moves the
// queue to the result channel until Stop or the server drops the watch.
type watcher struct {
	client string
	gvr    schema.GroupVersionResource
	filter filter

	result chan watch.Event
	wake   chan struct{}
	stop   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	queue   []watch.Event
	closing bool // close result once the queue is delivered
}

func newWatcher(client string, gvr schema.GroupVersionResource, f filter) *watcher {
	w := &watcher{
		client: client, gvr: gvr, filter: f,
		result: make(chan watch.Event),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
	}
	go w.pump()
	return w
}

func (w *watcher) send(ev watch.Event) {
	w.mu.Lock()
	if !w.closing {
		w.queue = append(w.queue, ev)
	}
	w.mu.Unlock()
	w.poke()
}

// end delivers ev (if any) and then closes the result channel.
func (w *watcher) end(ev *watch.Event) {
	w.mu.Lock()
	if !w.closing && ev != nil {
		w.queue = append(w.queue, *ev)
	}
	w.closing = true
	w.mu.Unlock()
	w.poke()
}

func (w *watcher) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcher) pump() {
	defer close(w.result)
	for {
		w.mu.Lock()
		if len(w.queue) == 0 {
			closing := w.closing
			w.mu.Unlock()
			if closing {
				return
			}
			select {
			case <-w.wake:
				continue
			case <-w.stop:
				return
			}
		}
		ev := w.queue[0]
		w.queue = w.queue[1:]
		w.mu.Unlock()
		select {
		case w.result <- ev:
		case <-w.stop:
			return
		}
	}
}

// Stop implements watch.Interface.
func (w *watcher) Stop() { w.once.Do(func() { close(w.stop) }) }

// ResultChan implements watch.Interface.
func (w *watcher) ResultChan() <-chan watch.Event { return w.result }
