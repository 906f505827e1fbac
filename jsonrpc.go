package introspection

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// This file reads a JSON-RPC request body the way both Go MCP SDKs read it,
// far enough to know the method of each message and the tool a tools/call
// names, and refuses what they could read differently from it or from each
// other. What they do, and where a naive reading goes wrong:
//
//   - Syntax. The go-sdk (github.com/modelcontextprotocol/go-sdk, through
//     github.com/segmentio/encoding/json) and mcp-go
//     (github.com/mark3labs/mcp-go, through encoding/json) accept the same
//     grammar: RFC 8259, plus bytes that are not UTF-8 inside strings. This
//     reader accepts exactly that. It must never be stricter: a body it took
//     for invalid JSON would be passed on unchecked, and the SDK would run
//     it. A body whose first value is not JSON is run by neither SDK.
//   - Member names. mcp-go's encoding/json matches a member to a struct
//     field case-insensitively, with Unicode simple folding (bytes.EqualFold:
//     "Method", "NAME", "paramſ" with U+017F for s, and U+212A for k), and a
//     later member overwrites an earlier one; the go-sdk decodes with
//     DontMatchCaseInsensitiveStructFields and matches exactly. So in
//     {"method":"tools/list","Method":"tools/call"} mcp-go calls a tool and
//     the go-sdk lists them. Names that fold to method, params or name but
//     are not that name are refused on the path to the method and the tool.
//   - Duplicates. Both keep the last of duplicate members (after folding, in
//     mcp-go); a reader that keeps the first sees another tool. A second
//     method, params or name on the path is refused.
//   - Escapes. Both decode \u escapes in member names and values, so
//     "n\u0061me" is name and "\u0065cho" is echo; names and values are
//     compared as decoded. segmentio's keyset pads names with zero bytes but
//     checks their length, so "name\u0000" is not name there either.
//   - Invalid UTF-8 and lone surrogates. Both replace each byte that is not
//     UTF-8, and each \u escape of a lone surrogate, with U+FFFD; a reader
//     that keeps the bytes sees another string. They are refused in the
//     method, the tool's name and the member names on the path to them.
//   - Trailing data. The go-sdk decodes the first value with a Decoder and
//     ignores what follows it ({...}garbage runs there); mcp-go's
//     json.Unmarshal refuses it. Anything but white space after a first
//     value that is an object or an array is refused.
//   - Nesting. The go-sdk refuses a body nested deeper than 1000 (its
//     internal/json counts brackets over the whole body), encoding/json
//     deeper than 10000, segmentio has no bound. Deeper than maxJSONDepth is
//     refused.
//   - Batches. The go-sdk reads a top-level array as a batch and runs each
//     element that is a message (for protocol versions before 2025-06-18,
//     and when the request states none); an element that is not an object
//     fails the batch. mcp-go's streamable server refuses arrays. A batch
//     needs what each of its requests needs.
//   - Shapes. A method that is not a string, and a tools/call whose params
//     is not an object with a string name, are errors in both SDKs; they
//     are refused here, so that no reading has to be guessed.

// maxJSONDepth is how deeply a request body may nest arrays and objects,
// the top-level value counting 1: the go-sdk's own bound (mcp-go's
// encoding/json allows 10000).
const maxJSONDepth = 1000

// errJSONSyntax means that the first value of a body is not JSON.
var errJSONSyntax = errors.New("introspection: request body is not JSON")

// errJSONTooDeep means that a body nests deeper than maxJSONDepth.
var errJSONTooDeep = errors.New("introspection: request body is nested deeper than " + strconv.Itoa(maxJSONDepth))

// rpcReader reads the first JSON value of data. Its methods take the
// index where what they read begins and return the index just past it.
type rpcReader struct {
	data  []byte
	depth int // arrays and objects open where the reader is
	// refusal is the first reason found to refuse the body. It counts only
	// if the whole first value is JSON: a body that is not goes to the SDK,
	// which runs nothing of it.
	refusal error
}

// rpcMessage is what one JSON-RPC message object names on the path to its
// operation.
type rpcMessage struct {
	method    []byte // the method, decoded
	hasMethod bool
	hasParams bool
	name      []byte // params.name, decoded
	hasName   bool
	// paramsErr is why params names no tool that both SDKs read alike. It
	// counts only for tools/call.
	paramsErr error
}

// refuse keeps err as the reason to refuse the body, unless there is one.
func (r *rpcReader) refuse(err error) {
	if r.refusal == nil {
		r.refusal = err
	}
}

// space returns the index of the first byte at or after i that is not
// JSON white space.
func space(d []byte, i int) int {
	for i < len(d) && d[i] <= ' ' && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

// at returns d[i], or 0 past the end.
func at(d []byte, i int) byte {
	if i < len(d) {
		return d[i]
	}
	return 0
}

// Masks for reading eight bytes at a time.
const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// stringStop marks the bytes that end a run of plain bytes inside a JSON
// string: the quote, the backslash and the control characters.
var stringStop = func() (t [256]bool) {
	for c := range 0x20 {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// plainRun returns the index of the first byte at or after j that is a
// quote, a backslash or a control character, or len(d). It reads eight
// bytes at a time, flagging in m each byte that is one of these: the lowest
// flag is always a true one.
func plainRun(d []byte, j int) int {
	for j+8 <= len(d) {
		x := binary.LittleEndian.Uint64(d[j:])
		q, b := x^(lsbs*'"'), x^(lsbs*'\\')
		if m := ((q-lsbs)&^q | (b-lsbs)&^b | (x-lsbs*0x20)&^x) & msbs; m != 0 {
			return j + bits.TrailingZeros64(m)/8
		}
		j += 8
	}
	for j < len(d) && !stringStop[d[j]] {
		j++
	}
	return j
}

// str reads the JSON string that begins at d[i], a quote, and returns the
// index past its closing quote, and whether it holds escapes; its inside,
// as written, is d[i+1:end-1].
func str(d []byte, i int) (end int, escaped bool, err error) {
	j := i + 1
	for {
		j = plainRun(d, j)
		switch c := at(d, j); {
		case c == '"':
			return j + 1, escaped, nil
		case c == '\\':
			escaped = true
			switch at(d, j+1) {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j += 2
			case 'u':
				if j+6 > len(d) || hex4(d[j+2:]) < 0 {
					return j, false, errJSONSyntax
				}
				j += 6
			default:
				return j, false, errJSONSyntax
			}
		default: // a control character, or the end
			return j, false, errJSONSyntax
		}
	}
}

// number reads the RFC 8259 number at d[i].
func number(d []byte, i int) (int, error) {
	j := i
	if at(d, j) == '-' {
		j++
	}
	switch c := at(d, j); {
	case c == '0':
		j++
	case '1' <= c && c <= '9':
		j = digits(d, j+1)
	default:
		return j, errJSONSyntax
	}
	if at(d, j) == '.' {
		k := digits(d, j+1)
		if k == j+1 {
			return k, errJSONSyntax
		}
		j = k
	}
	if c := at(d, j); c == 'e' || c == 'E' {
		j++
		if c := at(d, j); c == '+' || c == '-' {
			j++
		}
		k := digits(d, j)
		if k == j {
			return k, errJSONSyntax
		}
		j = k
	}
	return j, nil
}

// digits returns the index past the decimal digits at d[j].
func digits(d []byte, j int) int {
	for j < len(d) && '0' <= d[j] && d[j] <= '9' {
		j++
	}
	return j
}

// scalar reads the string, number, true, false or null at d[i].
func scalar(d []byte, i int) (int, error) {
	var word string
	switch at(d, i) {
	case '"':
		end, _, err := str(d, i)
		return end, err
	case 't':
		word = "true"
	case 'f':
		word = "false"
	case 'n':
		word = "null"
	default:
		return number(d, i)
	}
	if len(d)-i < len(word) || string(d[i:i+len(word)]) != word {
		return i, errJSONSyntax
	}
	return i + len(word), nil
}

// colon reads the white space and the colon after a member name that ends
// before d[i], and the white space after it.
func colon(d []byte, i int) (int, error) {
	i = space(d, i)
	if at(d, i) != ':' {
		return i, errJSONSyntax
	}
	return space(d, i+1), nil
}

// skip reads one JSON value of any kind at d[i], which is not white
// space, checking it without looking into it further.
func (r *rpcReader) skip(i int) (int, error) {
	d := r.data
	if c := at(d, i); c != '{' && c != '[' {
		return scalar(d, i)
	}
	// One bit for each array or object open inside the value: set for an
	// object. A value nests at most maxJSONDepth deep, so this is all the
	// memory skip needs.
	var objects [maxJSONDepth/64 + 1]uint64
	depth := r.depth
	for {
		// A value begins at d[i].
		if c := at(d, i); c == '{' || c == '[' {
			if depth++; depth > maxJSONDepth {
				return i, errJSONTooDeep
			}
			k := depth - r.depth - 1
			i = space(d, i+1)
			if c == '{' {
				objects[k/64] |= 1 << (k % 64)
				if at(d, i) != '}' {
					if at(d, i) != '"' {
						return i, errJSONSyntax
					}
					end, _, err := str(d, i)
					if err != nil {
						return end, err
					}
					if i, err = colon(d, end); err != nil {
						return i, err
					}
					continue
				}
			} else {
				objects[k/64] &^= 1 << (k % 64)
				if at(d, i) != ']' {
					continue
				}
			}
			i++
			depth--
		} else {
			var err error
			if i, err = scalar(d, i); err != nil {
				return i, err
			}
		}
		// A value ends before d[i]: close what ends with it.
		for depth > r.depth {
			k := depth - r.depth - 1
			object := objects[k/64]&(1<<(k%64)) != 0
			i = space(d, i)
			c := at(d, i)
			if c == ',' {
				i = space(d, i+1)
				if object {
					if at(d, i) != '"' {
						return i, errJSONSyntax
					}
					end, _, err := str(d, i)
					if err != nil {
						return end, err
					}
					if i, err = colon(d, end); err != nil {
						return i, err
					}
				}
				break
			}
			if object && c == '}' || !object && c == ']' {
				i++
				depth--
				continue
			}
			return i, errJSONSyntax
		}
		if depth == r.depth {
			return i, nil
		}
	}
}

// member reads the member name at d[i], the colon and the white space
// after it, and returns the name, decoded, and whether both SDKs read that
// same name.
func (r *rpcReader) member(i int) (end int, name []byte, ok bool, err error) {
	d := r.data
	if at(d, i) != '"' {
		return i, nil, false, errJSONSyntax
	}
	end, escaped, err := str(d, i)
	if err != nil {
		return end, nil, false, err
	}
	name, ok = jsonText(d[i+1:end-1], escaped)
	end, err = colon(d, end)
	return end, name, ok, err
}

// open enters the array or object at d[i] and returns the index past it
// and the white space after it.
func (r *rpcReader) open(i int) (int, error) {
	if r.depth++; r.depth > maxJSONDepth {
		return i, errJSONTooDeep
	}
	return space(r.data, i+1), nil
}

// close reads the white space after a value at d[i] and the comma or the
// closing brace after it; done reports the brace.
func (r *rpcReader) close(i int, brace byte) (end int, done bool, err error) {
	d := r.data
	i = space(d, i)
	switch at(d, i) {
	case ',':
		return space(d, i+1), false, nil
	case brace:
		r.depth--
		return i + 1, true, nil
	}
	return i, false, errJSONSyntax
}

// message reads the JSON-RPC message object at d[i].
func (r *rpcReader) message(i int) (end int, m rpcMessage, err error) {
	d := r.data
	if i, err = r.open(i); err != nil {
		return i, m, err
	}
	if at(d, i) == '}' {
		r.depth--
		return i + 1, m, nil
	}
	for {
		var (
			name []byte
			ok   bool
		)
		if i, name, ok, err = r.member(i); err != nil {
			return i, m, err
		}
		if !ok {
			r.refuse(errors.New("introspection: request has a member name that is not valid UTF-8"))
		}
		switch {
		case string(name) == "method":
			if m.hasMethod {
				r.refuse(errors.New(`introspection: request has member "method" more than once`))
			}
			m.hasMethod = true
			if at(d, i) != '"' {
				r.refuse(errors.New("introspection: request method is not a string"))
				i, err = r.skip(i)
				break
			}
			var escaped bool
			if end, escaped, err = str(d, i); err == nil {
				if m.method, ok = jsonText(d[i+1:end-1], escaped); !ok {
					r.refuse(errors.New("introspection: request method is not valid UTF-8"))
				}
			}
			i = end
		case string(name) == "params":
			if m.hasParams {
				r.refuse(errors.New(`introspection: request has member "params" more than once`))
			}
			m.hasParams = true
			if at(d, i) != '{' {
				m.paramsErr = errors.New("introspection: tools/call params is not an object")
				i, err = r.skip(i)
				break
			}
			i, err = r.params(i, &m)
		default:
			if foldsTo(name, "method") || foldsTo(name, "params") {
				r.refuse(errors.New("introspection: request has member " + strconv.QuoteToASCII(string(name)) +
					", which an SDK would read as method or params"))
			}
			i, err = r.skip(i)
		}
		if err != nil {
			return i, m, err
		}
		var done bool
		if i, done, err = r.close(i, '}'); err != nil || done {
			return i, m, err
		}
	}
}

// params reads the params object at d[i], for its member name.
func (r *rpcReader) params(i int, m *rpcMessage) (end int, err error) {
	d := r.data
	if i, err = r.open(i); err != nil {
		return i, err
	}
	if at(d, i) == '}' {
		r.depth--
		return i + 1, nil
	}
	fail := func(err error) {
		if m.paramsErr == nil {
			m.paramsErr = err
		}
	}
	for {
		var (
			name []byte
			ok   bool
		)
		if i, name, ok, err = r.member(i); err != nil {
			return i, err
		}
		if !ok {
			fail(errors.New("introspection: tools/call params has a member name that is not valid UTF-8"))
		}
		switch {
		case string(name) == "name":
			if m.hasName {
				fail(errors.New(`introspection: tools/call params has member "name" more than once`))
			}
			m.hasName = true
			if at(d, i) != '"' {
				fail(errors.New("introspection: tools/call params.name is not a string"))
				i, err = r.skip(i)
				break
			}
			var escaped bool
			if end, escaped, err = str(d, i); err == nil {
				if m.name, ok = jsonText(d[i+1:end-1], escaped); !ok {
					fail(errors.New("introspection: tools/call params.name is not valid UTF-8"))
				}
			}
			i = end
		default:
			if foldsTo(name, "name") {
				fail(errors.New("introspection: tools/call params has member " + strconv.QuoteToASCII(string(name)) +
					", which an SDK would read as name"))
			}
			i, err = r.skip(i)
		}
		if err != nil {
			return i, err
		}
		var done bool
		if i, done, err = r.close(i, '}'); err != nil || done {
			return i, err
		}
	}
}

// foldsTo reports whether encoding/json would decode a member called key
// into a struct field called name, which is ASCII, although key is not
// name: whether the two are equal under Unicode simple case folding, the
// rule encoding/json applies when no field has the exact name.
func foldsTo(key []byte, name string) bool {
	// Only a name of the same length, or one with a rune of more than one
	// byte (U+017F, U+212A: at most 3 bytes a rune), can fold to name.
	if len(key) == len(name) {
		return string(key) != name && bytes.EqualFold(key, []byte(name))
	}
	return len(key) > len(name) && len(key) <= 3*len(name) && !ascii(key) && bytes.EqualFold(key, []byte(name))
}

// ascii reports whether s is all ASCII.
func ascii(s []byte) bool {
	for _, c := range s {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// jsonText returns the text of a JSON string whose inside, as written, is
// raw, with its escapes decoded, and whether both SDKs read that same
// text: false when raw holds bytes that are not UTF-8 or an escape of a
// lone surrogate, which both replace with U+FFFD. raw must be the inside of
// a string that str read, and escaped what str reported of it.
func jsonText(raw []byte, escaped bool) ([]byte, bool) {
	if !escaped {
		return raw, utf8.Valid(raw)
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); {
		if raw[i] != '\\' {
			j := bytes.IndexByte(raw[i:], '\\')
			if j < 0 {
				j = len(raw) - i
			}
			out = append(out, raw[i:i+j]...)
			i += j
			continue
		}
		c := raw[i+1]
		i += 2
		switch c {
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			ru := hex4(raw[i:])
			i += 4
			if utf16.IsSurrogate(ru) {
				if ru >= 0xdc00 || i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
					return nil, false
				}
				lo := hex4(raw[i+2:])
				if lo < 0xdc00 || lo > 0xdfff {
					return nil, false
				}
				ru = utf16.DecodeRune(ru, lo)
				i += 6
			}
			out = utf8.AppendRune(out, ru)
		default: // '"', '\\', '/'
			out = append(out, c)
		}
	}
	return out, utf8.Valid(out)
}
