package introspection

import (
	"strings"
	"sync"
)

// maxInterned bounds an interner: values past it are kept per answer.
const maxInterned = 4096

// interner shares equal values between cached answers. Most tokens of a
// deployment have the same issuer, audience and token type, and a few sets
// of scopes, so the built-in cache holds those once.
type interner struct {
	mu sync.Mutex     // guards m
	m  map[string]any // by kind, NUL, value
}

func newInterner() *interner { return &interner{m: make(map[string]any)} }

// value returns a shared equal copy of v when v is a string or an array of
// strings, which JSON decoding makes immutable in effect; else v.
func (in *interner) value(kind string, v any) any {
	var key string
	switch v := v.(type) {
	case string:
		key = kind + "\x00" + v
	case []any:
		var b strings.Builder
		b.WriteString(kind)
		b.WriteString("\x00[")
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return v
			}
			b.WriteString("\x00")
			b.WriteString(s)
		}
		key = b.String()
	default:
		return v
	}
	return in.get(key, v)
}

// strings returns a shared equal copy of ss, which no one may change.
func (in *interner) strings(kind string, ss []string) []string {
	key := kind + "\x00" + strings.Join(ss, "\x00")
	return in.get(key, ss).([]string)
}

func (in *interner) get(key string, v any) any {
	in.mu.Lock()
	defer in.mu.Unlock()
	if shared, ok := in.m[key]; ok {
		return shared
	}
	if len(in.m) < maxInterned {
		in.m[key] = v
	}
	return v
}
