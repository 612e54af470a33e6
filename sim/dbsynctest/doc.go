// Package dbsynctest holds the integration tests of controller/dbsync
// against kongsim in database mode: in-process nodes on the in-memory
// store under testing/synctest, and two nodes sharing a real PostgreSQL
// database. It has no code of its own outside tests.
package dbsynctest
