package introspection

import (
	"testing"
	"time"

	"github.com/mcpauth/introspection/introspectiontest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReview15BackwardClockNeverLengthensALocalEntry breaks "a local entry
// lives at most LocalCacheTTL, never past the end of the Cache's entry"
// and "also when Settings.Now steps back": once Settings.Now steps back an
// hour after the local tier was filled, the local entry is served long
// after the shared entry (on the Cache's own clock, as Redis keeps time)
// ended and after LocalCacheTTL has passed on that clock.
func TestReview15BackwardClockNeverLengthensALocalEntry(t *testing.T) {
	wall := newFakeClock()  // Settings.Now
	store := newFakeClock() // the Cache's own clock, which never steps back
	as := newAS(t, store)
	tok := as.Issue(introspectiontest.TokenOptions{Subject: "alice", Lifetime: 24 * time.Hour})
	cc := &countingCache{Cache: newMapCache(store.Now)}
	v := newVerifier(t, as.IntrospectionURL, wall, func(s *Settings) {
		s.CacheTTL = 2 * time.Second
		s.LocalCacheTTL = 2 * time.Second
		s.Cache = cc
		s.Leeway = 2 * time.Hour // the step never rejects the token by itself
	})
	// The local tier's monotonic clock (time.Now in production) is the
	// one that never steps back.
	v.cache.(*sharedStore).local.mono = store.Now
	fill(t, v, tok)
	require.Equal(t, int64(1), as.RequestsFor(tok))

	wall.Advance(-time.Hour)
	store.Advance(time.Minute) // the shared entry and LocalCacheTTL ended long ago
	wall.Advance(time.Minute)
	fill(t, v, tok)
	assert.Equal(t, int64(2), as.RequestsFor(tok), "the local entry outlived the shared one")
}

// TestLocalTierReadsTheMonotonicClockOnlyWithSettingsNow checks when the
// local tier reads the monotonic clock beside Settings.Now: with a
// Settings.Now of the caller's, which may step back, so that it never
// lengthens an entry; without one, never, as Settings.Now is then
// time.Now, whose readings compare by the monotonic clock already, and a
// hit does no second reading.
func TestLocalTierReadsTheMonotonicClockOnlyWithSettingsNow(t *testing.T) {
	as := newAS(t, nil)
	for _, tc := range []struct {
		name     string
		clock    *fakeClock
		wantMono bool
	}{
		{"with Settings.Now", newFakeClock(), true},
		{"without Settings.Now", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, _ := tieredVerifier(t, as, tc.clock, nil)
			local := v.cache.(*sharedStore).local
			require.NotNil(t, local)
			assert.Equal(t, tc.wantMono, local.mono != nil)
		})
	}
}
