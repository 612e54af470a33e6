package translate

import (
	"slices"
	"strings"
	"time"
)

// aged is an object's place in oldest-first order: its creation time and
// then its namespace, name and uid as the tie-break. Sorting these keys,
// copied out of the objects, compares neighbouring memory instead of
// following a pointer into a large object at every comparison, which at
// ten thousand objects is most of the cost of the sort.
type aged[T any] struct {
	created         time.Time
	namespace, name string
	uid             string
	obj             T
}

func compareAged[T any](a, b aged[T]) int {
	if c := a.created.Compare(b.created); c != 0 {
		return c
	}
	if c := strings.Compare(a.namespace, b.namespace); c != 0 {
		return c
	}
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	return strings.Compare(a.uid, b.uid)
}

// oldestFirst sorts keys and returns their objects in that order.
func oldestFirst[T any](keys []aged[T]) []T {
	slices.SortFunc(keys, compareAged[T])
	out := make([]T, len(keys))
	for i, k := range keys {
		out[i] = k.obj
	}
	return out
}
