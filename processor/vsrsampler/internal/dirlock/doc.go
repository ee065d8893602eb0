// Package dirlock locks a directory for one process, with flock where there is one: a
// directory whose lock is free belongs to no running process.
package dirlock

// Name is the lock file in a locked directory.
const Name = "lock"
