package introspection

import (
	"context"
	"time"
)

// staleLogInterval is the least time between two warnings about stale
// answers served.
const staleLogInterval = 10 * time.Second

func serverCouldNotAnswer(*IntrospectionError) bool { return false }

func (c *memoryCache) lookup(context.Context, string) (*answer, time.Time, bool) {
	return nil, time.Time{}, false
}
