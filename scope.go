package introspection

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ScopeMatcher reports whether the granted scope implies the required one,
// for scope hierarchies such as the MCP authorization spec asks servers to
// account for, where a broader scope implies narrower ones. It must be safe
// for concurrent use. It is asked only about a required scope that the token
// was not granted exactly (an exactly granted scope always satisfies its
// requirement), at most once per granted and required pair of a check.
//
// A ScopeMatcher that panics fails closed: the panic is recovered, counted
// in [Stats].Panics and logged once (see [Verifier] for what the record
// holds), and the scopes still to be matched count as missing.
type ScopeMatcher func(granted, required string) bool

// HierarchicalScopes returns a [ScopeMatcher] for scopes made of parts
// joined by sep, such as ":" for the "a:b:c" convention: a granted scope
// implies itself and every scope that extends it by sep and one or more
// further parts. With ":", "files" implies "files:read" and
// "files:read:own", never the reverse, and "file" does not imply
// "files:read".
//
// Parts are cut where [strings.Split] cuts. A scope with an empty part
// (such as "files:", ":files" or "files::read") matches only itself: it
// neither implies nor is implied by another scope.
//
// sep must be one or more characters that an RFC 6749 §3.3 scope-token may
// hold (%x21 / %x23-5B / %x5D-7E); anything else is an error.
func HierarchicalScopes(sep string) (ScopeMatcher, error) {
	if !validScope(sep) {
		return nil, fmt.Errorf("introspection: invalid scope separator %s: want one or more of the characters a scope may hold", strconv.Quote(sep))
	}
	return func(granted, required string) bool {
		return granted == required || extends(required, granted, sep)
	}, nil
}

// extends reports whether required is prefix followed by sep and one or more
// further parts, with no empty part anywhere, where parts are cut as
// strings.Split(required, sep) cuts them. It allocates nothing.
func extends(required, prefix, sep string) bool {
	if prefix == "" || len(required) <= len(prefix)+len(sep) || required[:len(prefix)] != prefix {
		return false
	}
	cut := false // a separator of required begins right after prefix
	s, at := required, 0
	for {
		i := strings.Index(s, sep)
		if i < 0 {
			return cut && s != ""
		}
		if i == 0 {
			return false // an empty part
		}
		if at+i == len(prefix) {
			cut = true
		}
		at += i + len(sep)
		s = s[i+len(sep):]
	}
}

// ScopeImplications returns a [ScopeMatcher] from a table in which each key
// implies the scopes listed for it, and transitively what those imply:
// with {"admin": {"write"}, "write": {"read"}}, "admin" implies "read".
// Cycles are allowed. Every scope implies itself, also one the table does
// not name. The table is copied: changing it later changes nothing.
//
// A key or a listed scope that is not an RFC 6749 §3.3 scope-token (one or
// more of %x21 / %x23-5B / %x5D-7E) is an error that names it.
func ScopeImplications(table map[string][]string) (ScopeMatcher, error) {
	for key, implied := range table {
		for _, sc := range append([]string{key}, implied...) {
			if !validScope(sc) {
				return nil, fmt.Errorf("introspection: invalid scope %s in the scope implications", strconv.Quote(sc))
			}
		}
	}
	// closure[g] holds every scope g implies, itself excepted.
	closure := make(map[string]map[string]struct{}, len(table))
	for key := range table {
		reach := make(map[string]struct{})
		queue := []string{key}
		for len(queue) > 0 {
			next := queue[len(queue)-1]
			queue = queue[:len(queue)-1]
			for _, sc := range table[next] {
				if _, seen := reach[sc]; !seen {
					reach[sc] = struct{}{}
					queue = append(queue, sc)
				}
			}
		}
		delete(reach, key)
		if len(reach) > 0 {
			closure[key] = reach
		}
	}
	return func(granted, required string) bool {
		if granted == required {
			return true
		}
		_, ok := closure[granted][required]
		return ok
	}, nil
}

// validScope reports whether s is an RFC 6749 §3.3 scope-token: one or more
// characters of %x21 / %x23-5B / %x5D-7E.
func validScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7E || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// CheckScopes returns nil when t holds every required scope under
// Settings.ScopeMatcher (exact matching when it is nil), else a
// [*ScopeError], which satisfies errors.Is with [ErrInsufficientScope],
// naming the missing ones in the order given. Handlers and adapters use it
// for scopes that depend on the request; [AccessToken.HasScope] knows no
// hierarchy.
//
// A nil t holds no scope, and a nil v fails closed: every required scope
// counts as missing. A matcher that panics fails closed too: the scopes it
// was still to decide count as missing, and the panic is counted in
// [Stats].Panics and logged once, without its value.
func (v *Verifier) CheckScopes(t *AccessToken, required ...string) error {
	var granted []string
	if t != nil {
		granted = t.Scopes
	}
	if v == nil {
		if len(required) == 0 {
			return nil
		}
		return &ScopeError{Missing: slices.Clone(required), Granted: slices.Clone(granted)}
	}
	se, _ := v.missingScopes(context.Background(), granted, required)
	if se == nil {
		return nil
	}
	return se
}

// missingScopes returns a [*ScopeError] naming the required scopes that
// granted lacks under Settings.ScopeMatcher, or nil. panicked reports that
// the matcher panicked; the scopes it was still to decide then count as
// missing. The panic is recovered, counted and logged with ctx.
func (v *Verifier) missingScopes(ctx context.Context, granted, required []string) (se *ScopeError, panicked bool) {
	var missing []string
	for i, r := range required {
		if slices.Contains(granted, r) || slices.Contains(required[:i], r) {
			continue // granted exactly, or decided already: listed once
		}
		if v.s.ScopeMatcher != nil && !panicked {
			var ok bool
			if ok, panicked = v.implied(ctx, granted, r); ok {
				continue
			}
		}
		missing = append(missing, r)
	}
	if missing != nil {
		return &ScopeError{Missing: missing, Granted: slices.Clone(granted)}, panicked
	}
	return nil, panicked
}

// implied reports whether a scope of granted implies required under
// Settings.ScopeMatcher, and whether the matcher panicked.
func (v *Verifier) implied(ctx context.Context, granted []string, required string) (ok, panicked bool) {
	defer func() {
		if r := recover(); r != nil {
			ok, panicked = false, true
			_ = v.recovered(ctx, whereScopeMatcher, r)
		}
	}()
	for _, g := range granted {
		if v.s.ScopeMatcher(g, required) {
			return true, false
		}
	}
	return false, false
}

// whereScopeMatcher names Settings.ScopeMatcher in a recovered panic.
const whereScopeMatcher = "Settings.ScopeMatcher"
