//go:build !unix

package otel

import "time"

// cpuTime is not measured here.
func cpuTime() time.Duration { return 0 }
