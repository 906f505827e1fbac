package introspection

import (
	"context"
	"fmt"
	"hash/maphash"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSharedValuesNeverHoldMoreThanTheyCount fills a small built-in cache
// with answers whose scope is one short, distinct scope padded with white
// space up to the bound of an entry. The list of scopes is a share of the
// interner's bound, but its one string is a piece of the padded scope
// string: the interner must hold no more than the text it counts, and
// nothing of an answer once its entry has left.
func TestSharedValuesNeverHoldMoreThanTheyCount(t *testing.T) {
	const tokens, size = 900, 10
	pad := strings.Repeat(" ", maxCachedAnswer-100)
	ctx := context.Background()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	c := newMemoryCache(size, time.Now)
	for i := range tokens {
		a, err := decodeAnswer(fmt.Appendf(nil, `{"active":true,"scope":"s%d%s"}`, i, pad))
		require.NoError(t, err)
		require.LessOrEqual(t, int(a.size), maxCachedAnswer)
		c.set(ctx, fmt.Sprint("tok-", i), a, time.Hour)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	require.Equal(t, size, c.len())
	held := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	// Each entry holds its answer; the interner at most what it counts,
	// with room for the map it keeps that in.
	limit := int64(size*2*maxCachedAnswer + 4*maxInternedBytes)
	t.Logf("heap held: %d bytes for %d entries (limit %d)", held, size, limit)
	assert.Less(t, held, limit)
	runtime.KeepAlive(c)
}

// TestInternerSharesOnlyValuesOfTheSameType stores, under the hash of an
// empty value, a value of another type, as a collision of the 64-bit hash
// would: the interner must compare the types too and never hand back the
// other value.
func TestInternerSharesOnlyValuesOfTheSameType(t *testing.T) {
	hashOf := func(in *interner, tag byte, strs ...string) uint64 {
		var h maphash.Hash
		h.SetSeed(in.seed)
		_ = h.WriteByte(tag)
		if tag != tagString {
			writeLen(&h, len(strs))
		}
		for _, s := range strs {
			writeString(&h, s)
		}
		return h.Sum64()
	}
	tests := []struct {
		name   string
		stored any  // what the colliding entry holds
		tag    byte // of the value asked for
		value  any  // the value asked for
		strs   []string
	}{
		{"an empty string against a list", []any{}, tagString, "", []string{""}},
		{"an empty string against a list of strings", []string{}, tagString, "", []string{""}},
		{"an empty list against a string", "", tagArray, []any{}, nil},
		{"an empty list against a list of strings", []string{}, tagArray, []any{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := newInterner()
			in.mu.Lock()
			defer in.mu.Unlock()
			in.m[hashOf(in, tc.tag, tc.strs...)] = tc.stored
			got := in.value(tc.value)
			assert.IsType(t, tc.value, got, "the value must keep its type")
		})
	}
	t.Run("an empty list of strings against a list", func(t *testing.T) {
		in := newInterner()
		in.mu.Lock()
		defer in.mu.Unlock()
		in.m[hashOf(in, tagStrings)] = []any{}
		assert.NotPanics(t, func() { assert.Equal(t, []string{}, in.strings([]string{})) })
	})
}
