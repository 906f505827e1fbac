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
// other. What they do (read from go-sdk v1.8.0 and mcp-go v1.2.1, and
// shown by examples/internal/sdkdiff), and where a naive reading goes
// wrong:
//
//   - Reading. Both read the whole body of a POST only: the go-sdk through
//     http.MaxBytesReader, 4 MiB unless set otherwise, mcp-go with no
//     bound. Both look a tool up by its exact decoded name.
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
//   - encoding/json under GOEXPERIMENT=jsonv2 keeps these v1 rules
//     (MatchCaseSensitiveDelimiter: "na_me" is not name).
//   - Nesting. The go-sdk refuses a body nested deeper than 1000 (its
//     internal/json counts brackets over the whole body), encoding/json
//     deeper than 10000, segmentio has no bound. Deeper than maxJSONDepth is
//     refused.
//   - Batches. The go-sdk reads a top-level array as a batch and runs each
//     element that is a message (for protocol versions before 2025-06-18,
//     and when the request states none); an element that is not an object
//     fails the batch, and a request whose id an earlier one has is not
//     run. mcp-go's streamable server refuses arrays. A batch needs what
//     each of its requests needs.
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

// errTrailingData means that a body has more than white space after its
// first value.
var errTrailingData = errors.New("introspection: request body has data after its JSON value")

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

// The roles of a value on the path to an operation, and of the array or
// object it is.
const (
	roleOther        = iota // a value whose inside does not matter
	roleTop                 // the first value of the body
	roleElement             // an element of a top-level array (a batch)
	roleMethod              // a message's method
	roleParams              // a message's params
	roleName                // params.name
	roleBatch               // the top-level array, once open
	roleMessage             // a message object, once open
	roleParamsObject        // params, once open
)

// rpcScan is the state of readRPC while it reads one body.
type rpcScan struct {
	m       rpcMessage // the message being read
	refusal error      // the first reason found to refuse the body
}

// refuse keeps err as the reason to refuse the body, unless there is one.
func (s *rpcScan) refuse(err error) {
	if s.refusal == nil {
		s.refusal = err
	}
}

// paramsFail keeps err as the reason why the message's params name no
// tool, unless there is one.
func (s *rpcScan) paramsFail(err error) {
	if s.m.paramsErr == nil {
		s.m.paramsErr = err
	}
}

// readRPC reads the first JSON value of the body d, and adds to ops the
// message object it is, or each message object in it if it is an array (a
// batch), once the message is read. An error that ops.add returns is a
// reason to refuse the body. readRPC returns errJSONTooDeep as soon as the
// value nests deeper than maxJSONDepth; else errJSONSyntax if the value is
// not JSON, whatever else it found; else the first reason found to refuse
// the body, or errTrailingData. A first value that is neither an object nor
// an array is not read.
//
// It reads the body once, keeping one bit for each array or object open
// (set for an object) and the roles of the three outermost. It allocates
// nothing unless the body nests deeper than 64, a member name or string on
// the path holds an escape, or the body is refused.
func readRPC(d []byte, ops *opList) error {
	var (
		s       rpcScan
		i       = space(d, 0)
		depth   int
		objects uint64   // bit k: the array or object at depth k+1 is an object, for depth up to 64
		deeper  []uint64 // the same past depth 64, made when needed
		roles   [4]uint8 // the roles of the array or object open at depth 1 to 3
		role    = uint8(roleTop)
		err     error
	)
	if c := at(d, i); c != '{' && c != '[' {
		return nil
	}
	for {
		// A value of role role begins at d[i], which is not white space.
		c := at(d, i)
		switch {
		case c == '{' || c == '[':
			if depth++; depth > maxJSONDepth {
				return errJSONTooDeep
			}
			object := c == '{'
			if k := depth - 1; k < 64 {
				objects = objects&^(1<<k) | b2u(object)<<k
			} else {
				if deeper == nil {
					deeper = make([]uint64, (maxJSONDepth+63)/64)
				}
				k -= 64
				deeper[k/64] = deeper[k/64]&^(1<<(k%64)) | b2u(object)<<(k%64)
			}
			open := uint8(roleOther)
			switch {
			case role == roleTop && object:
				open = roleMessage
			case role == roleTop:
				open = roleBatch
			case role == roleElement && object:
				open = roleMessage
			case role == roleParams && object:
				open = roleParamsObject
			case role == roleMethod:
				s.refuse(errors.New("introspection: request method is not a string"))
			case role == roleParams:
				s.paramsFail(errors.New("introspection: tools/call params is not an object"))
			case role == roleName:
				s.paramsFail(errors.New("introspection: tools/call params.name is not a string"))
			}
			if open == roleMessage {
				s.m = rpcMessage{}
			}
			if depth < len(roles) {
				roles[depth] = open
			}
			i = space(d, i+1)
			if object {
				if at(d, i) != '}' {
					if i, role, err = s.member(d, i, open); err != nil {
						return err
					}
					continue
				}
			} else if at(d, i) != ']' {
				role = roleOther
				if open == roleBatch {
					role = roleElement
				}
				continue
			}
			// An empty array or object: it ends here.
			i++
			if open == roleMessage {
				if err := ops.add(&s.m); err != nil {
					s.refuse(err)
				}
			}
			depth--
		case c == '"':
			end, escaped, err := str(d, i)
			if err != nil {
				return err
			}
			switch role {
			case roleMethod:
				var ok bool
				if s.m.method, ok = jsonText(d[i+1:end-1], escaped); !ok {
					s.refuse(errors.New("introspection: request method is not valid UTF-8"))
				}
			case roleName:
				var ok bool
				if s.m.name, ok = jsonText(d[i+1:end-1], escaped); !ok {
					s.paramsFail(errors.New("introspection: tools/call params.name is not valid UTF-8"))
				}
			case roleParams:
				s.paramsFail(errors.New("introspection: tools/call params is not an object"))
			}
			i = end
		default:
			if i, err = scalar(d, i); err != nil {
				return err
			}
			switch role {
			case roleMethod:
				s.refuse(errors.New("introspection: request method is not a string"))
			case roleParams:
				s.paramsFail(errors.New("introspection: tools/call params is not an object"))
			case roleName:
				s.paramsFail(errors.New("introspection: tools/call params.name is not a string"))
			}
		}
		// A value ends before d[i]: close what ends with it.
		for {
			if depth == 0 {
				switch {
				case s.refusal != nil:
					return s.refusal
				case space(d, i) != len(d):
					return errTrailingData
				}
				return nil
			}
			var object bool
			if k := depth - 1; k < 64 {
				object = objects&(1<<k) != 0
			} else {
				k -= 64
				object = deeper[k/64]&(1<<(k%64)) != 0
			}
			open := uint8(roleOther)
			if depth < len(roles) {
				open = roles[depth]
			}
			i = space(d, i)
			c := at(d, i)
			if c == ',' {
				i = space(d, i+1)
				if object {
					if i, role, err = s.member(d, i, open); err != nil {
						return err
					}
				} else {
					role = roleOther
					if open == roleBatch {
						role = roleElement
					}
				}
				break
			}
			if object && c != '}' || !object && c != ']' {
				return errJSONSyntax
			}
			i++
			if open == roleMessage {
				if err := ops.add(&s.m); err != nil {
					s.refuse(err)
				}
			}
			depth--
		}
	}
}

// b2u is 1 for true and 0 for false.
func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// member reads the member name at d[i] in an object of role open, the
// colon and the white space after it, and returns the index of the
// member's value and the value's role.
func (s *rpcScan) member(d []byte, i int, open uint8) (int, uint8, error) {
	if at(d, i) != '"' {
		return i, 0, errJSONSyntax
	}
	end, escaped, err := str(d, i)
	if err != nil {
		return end, 0, err
	}
	role := uint8(roleOther)
	if open == roleMessage || open == roleParamsObject {
		role = s.path(d[i+1:end-1], escaped, open)
	}
	end = space(d, end)
	if at(d, end) != ':' {
		return end, 0, errJSONSyntax
	}
	return space(d, end+1), role, nil
}

// path returns the role of the value of the member whose name, as written,
// is raw, in a message or params object, and notes the reasons to refuse
// the body that the name gives.
func (s *rpcScan) path(raw []byte, escaped bool, open uint8) uint8 {
	name, ok, plain := raw, true, ascii(raw)
	if escaped {
		name, ok = jsonText(raw, true)
		plain = ok && ascii(name)
	} else if !plain {
		ok = utf8.Valid(raw)
	}
	if open == roleMessage {
		if !ok {
			s.refuse(errors.New("introspection: request has a member name that is not valid UTF-8"))
		}
		switch {
		case string(name) == "method":
			if s.m.hasMethod {
				s.refuse(errors.New(`introspection: request has member "method" more than once`))
			}
			s.m.hasMethod = true
			return roleMethod
		case string(name) == "params":
			if s.m.hasParams {
				s.refuse(errors.New(`introspection: request has member "params" more than once`))
			}
			s.m.hasParams = true
			return roleParams
		case plain && len(name) != len("method"):
			// No other ASCII name folds to method or params.
		case foldsTo(name, "method") || foldsTo(name, "params"):
			s.refuse(errors.New("introspection: request has member " + strconv.QuoteToASCII(string(name)) +
				", which an SDK would read as method or params"))
		}
		return roleOther
	}
	if !ok {
		s.paramsFail(errors.New("introspection: tools/call params has a member name that is not valid UTF-8"))
	}
	switch {
	case string(name) == "name":
		if s.m.hasName {
			s.paramsFail(errors.New(`introspection: tools/call params has member "name" more than once`))
		}
		s.m.hasName = true
		return roleName
	case plain && len(name) != len("name"):
	case foldsTo(name, "name"):
		s.paramsFail(errors.New("introspection: tools/call params has member " + strconv.QuoteToASCII(string(name)) +
			", which an SDK would read as name"))
	}
	return roleOther
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

// str reads the JSON string that begins at d[i], a quote, and returns the
// index past its closing quote, and whether it holds escapes; its inside,
// as written, is d[i+1:end-1].
func str(d []byte, i int) (end int, escaped bool, err error) {
	j := i + 1
	for {
		// Skip plain bytes eight at a time: flag in m each byte that is a
		// quote, a backslash or a control character. The lowest flag is
		// always a true one.
		for j+8 <= len(d) {
			x := binary.LittleEndian.Uint64(d[j:])
			q, b := x^(lsbs*'"'), x^(lsbs*'\\')
			if m := ((q-lsbs)&^q | (b-lsbs)&^b | (x-lsbs*0x20)&^x) & msbs; m != 0 {
				j += bits.TrailingZeros64(m) / 8
				break
			}
			j += 8
		}
		for j < len(d) && !stringStop[d[j]] {
			j++
		}
		switch at(d, j) {
		case '"':
			return j + 1, escaped, nil
		case '\\':
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

// scalar reads the number, true, false or null at d[i].
func scalar(d []byte, i int) (int, error) {
	var word string
	switch at(d, i) {
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
		return raw, ascii(raw) || utf8.Valid(raw)
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
