// Package chaos holds konductor's drills: declarative fault experiments with
// steady-state probes, a journal and a report, runnable against any cluster
// or the in-process world.
package chaos
