package introspection

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// smallObject is how many member names of one object are compared one by
// one; an object with more is checked with a set, so that the scan stays
// linear in the size of the text.
const smallObject = 16

// jsonStats is what scanJSON learns about a JSON text.
type jsonStats struct {
	values    int    // JSON values: the outermost, each member's value, each array element
	duplicate string // a name that one object has more than once, decoded
	dup       bool   // whether there is such a name
	compared  int    // name comparisons and set lookups: at most smallObject a name
}

// frame is an object or array being scanned.
type frame struct {
	object bool
	start  int                 // where the object's names begin in names
	set    map[string]struct{} // the object's names, once it has more than smallObject
}

// scanJSON walks data, which must already be known to be valid JSON, once:
// it counts its values and finds a member name that one object, at any
// depth, has more than once. Names are compared as decoded, so "a" and
// "\u0061" are the same name. Go's decoder keeps the last of duplicate
// members; another parser may keep the first, so an answer like
// {"active":false,"active":true} is ambiguous and refused, as is the same
// within any object inside it.
//
// It allocates nothing for an answer nested at most eight deep, with at
// most smallObject members an object, 32 names in the objects open at one
// time, and no escapes in names: a typical answer. Its cost is linear in
// the length of data.
func scanJSON(data []byte) jsonStats {
	var (
		st       jsonStats
		framesBy [8]frame
		namesBy  [32][]byte
		frames   = framesBy[:0]
		names    = namesBy[:0]
		wantName bool // the next string is a member name
	)
	for i := 0; i < len(data); {
		switch c := data[i]; c {
		case ' ', '\t', '\n', '\r', ':':
			i++
		case ',':
			wantName = len(frames) > 0 && frames[len(frames)-1].object
			i++
		case '{', '[':
			st.values++
			frames = append(frames, frame{object: c == '{', start: len(names)})
			wantName = c == '{'
			i++
		case '}', ']':
			if len(frames) > 0 {
				names = names[:frames[len(frames)-1].start]
				frames = frames[:len(frames)-1]
			}
			wantName = false
			i++
		case '"':
			end := stringEnd(data, i)
			if !wantName {
				st.values++
				i = end
				continue
			}
			wantName = false
			name := data[i+1 : max(i+1, end-1)]
			if bytes.IndexByte(name, '\\') >= 0 {
				name = appendUnquoted(nil, name)
			}
			i = end
			f := &frames[len(frames)-1]
			if f.set != nil {
				st.compared++
				if _, seen := f.set[string(name)]; seen {
					return jsonStats{duplicate: string(name), dup: true}
				}
				f.set[string(name)] = struct{}{}
				continue
			}
			for _, seen := range names[f.start:] {
				st.compared++
				if bytes.Equal(seen, name) {
					return jsonStats{duplicate: string(name), dup: true}
				}
			}
			names = append(names, name)
			if len(names)-f.start > smallObject {
				f.set = make(map[string]struct{}, 2*smallObject)
				for _, n := range names[f.start:] {
					f.set[string(n)] = struct{}{}
				}
				names = names[:f.start]
			}
		default: // a number, true, false or null
			st.values++
			for i++; i < len(data); i++ {
				if c := data[i]; c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
					break
				}
			}
		}
	}
	return st
}

// stringEnd returns the index just past the JSON string that starts at i:
// past the first quote that no odd run of backslashes escapes.
func stringEnd(data []byte, i int) int {
	for j := i + 1; j < len(data); j++ {
		q := bytes.IndexByte(data[j:], '"')
		if q < 0 {
			break
		}
		j += q
		k := j
		for k > i+1 && data[k-1] == '\\' {
			k--
		}
		if (j-k)%2 == 0 {
			return j + 1
		}
	}
	return len(data)
}

// appendUnquoted appends to dst the text of the inside of a JSON string,
// whose escapes must be valid, decoded as encoding/json decodes it: a \u
// escape of a lone surrogate becomes U+FFFD.
func appendUnquoted(dst, s []byte) []byte {
	dst, _ = appendUnquotedExact(dst, s)
	return dst
}

// appendUnquotedExact is appendUnquoted that also reports whether no lone
// surrogate was replaced on the way.
func appendUnquotedExact(dst, s []byte) (_ []byte, exact bool) {
	exact = true
	for i := 0; i < len(s); {
		if s[i] != '\\' {
			j := bytes.IndexByte(s[i:], '\\')
			if j < 0 {
				return append(dst, s[i:]...), exact
			}
			dst = append(dst, s[i:i+j]...)
			i += j
			continue
		}
		if i+1 >= len(s) {
			return dst, exact
		}
		c := s[i+1]
		i += 2
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := hex4(s[i:])
			if r < 0 {
				return dst, exact
			}
			i += 4
			if utf16.IsSurrogate(r) {
				if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
					if r2 := utf16.DecodeRune(r, hex4(s[i+2:])); r2 != utf8.RuneError {
						dst = utf8.AppendRune(dst, r2)
						i += 6
						continue
					}
				}
				r, exact = utf8.RuneError, false
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
	return dst, exact
}

// hex4 returns the value of the four hexadecimal digits that s begins
// with, or -1.
func hex4(s []byte) rune {
	if len(s) < 4 {
		return -1
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return -1
		}
		r = r<<4 | rune(c)
	}
	return r
}
