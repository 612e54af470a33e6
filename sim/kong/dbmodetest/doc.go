// Package dbmodetest holds the end-to-end test of kongsim in database mode:
// two kongsim processes share one PostgreSQL database and are driven only
// through the binary's documented contract (KONG_* environment, Admin API,
// Status API, proxy), as the Kong container image would be. It has no code
// of its own outside tests.
package dbmodetest
