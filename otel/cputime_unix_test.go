//go:build unix

package otel

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time the process has used, user and system:
// unlike the wall clock, it does not grow while other processes run.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
