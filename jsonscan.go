package introspection

import (
	"bytes"
	"encoding/json"
)

// duplicateKey reports whether the top-level JSON object in data, which
// must already be known to be valid JSON, names a member twice. Go's decoder
// keeps the last of duplicate members; another parser may keep the first, so
// an answer like {"active":false,"active":true} is ambiguous and refused.
func duplicateKey(data []byte) (string, bool) {
	var keysBuf [32][]byte
	keys := keysBuf[:0]
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return "", false
	}
	i++
	for {
		i = skipSpace(data, i)
		if i >= len(data) || data[i] == '}' {
			return "", false
		}
		if data[i] == ',' {
			i = skipSpace(data, i+1)
		}
		start := i
		i = skipString(data, i)
		key := data[start+1 : i-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			var k string
			_ = json.Unmarshal(data[start:i], &k)
			key = []byte(k)
		}
		for _, seen := range keys {
			if bytes.Equal(seen, key) {
				return string(key), true
			}
		}
		keys = append(keys, key)
		i = skipSpace(data, i)
		i++ // ':'
		i = skipValue(data, skipSpace(data, i))
	}
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index just past the JSON string starting at i.
func skipString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		switch data[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return i
}

// skipValue returns the index just past the JSON value starting at i.
func skipValue(data []byte, i int) int {
	depth := 0
	for i < len(data) {
		switch data[i] {
		case '"':
			i = skipString(data, i)
			if depth == 0 {
				return i
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return i + 1
			}
			if depth < 0 {
				return i
			}
		case ',':
			if depth == 0 {
				return i
			}
		}
		i++
	}
	return i
}
