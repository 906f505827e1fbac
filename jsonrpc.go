package introspection

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/bits"
	"strconv"
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

// The roles of a value on the path to an operation.
const (
	roleOther  = iota // a value whose inside does not matter
	roleMethod        // a message's method
	roleParams        // a message's params
	roleName          // params.name
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
// It reads the body once, from left to right: the messages, their params
// and the values on the path to the operation member by member, and every
// other value (arguments, _meta, ids) with skip, which checks it without
// a call for each value inside it. It allocates nothing unless a value it
// skips nests deeper than 64, a member name or string on the path holds an
// escape, or the body is refused.
func readRPC(d []byte, ops *opList) error {
	var s rpcScan
	i := space(d, 0)
	var err error
	switch at(d, i) {
	case '{':
		i, err = s.message(d, i, 1, ops)
	case '[':
		i, err = s.batch(d, i, ops)
	default:
		return nil
	}
	switch {
	case err != nil:
		return err
	case s.refusal != nil:
		return s.refusal
	case space(d, i) != len(d):
		return errTrailingData
	}
	return nil
}

// batch reads the array at d[i], the first value of the body, adds each
// message in it to ops, and returns the index past it.
func (s *rpcScan) batch(d []byte, i int, ops *opList) (int, error) {
	i = space(d, i+1)
	if at(d, i) == ']' {
		return i + 1, nil
	}
	for {
		var err error
		if at(d, i) == '{' {
			i, err = s.message(d, i, 2, ops)
		} else {
			i, err = skip(d, i, 1)
		}
		if err != nil {
			return i, err
		}
		i = space(d, i)
		switch at(d, i) {
		case ',':
			i = space(d, i+1)
		case ']':
			return i + 1, nil
		default:
			return i, errJSONSyntax
		}
	}
}

// message reads the message object at d[i], inside depth-1 arrays, adds it
// to ops and returns the index past it.
func (s *rpcScan) message(d []byte, i, depth int, ops *opList) (int, error) {
	s.m = rpcMessage{}
	i = space(d, i+1)
	if at(d, i) != '}' {
		for {
			role, j, err := s.member(d, i, false)
			if err != nil {
				return j, err
			}
			switch role {
			case roleMethod:
				i, err = s.method(d, j, depth)
			case roleParams:
				i, err = s.params(d, j, depth)
			default:
				i, err = skip(d, j, depth)
			}
			if err != nil {
				return i, err
			}
			i = space(d, i)
			if c := at(d, i); c == '}' {
				break
			} else if c != ',' {
				return i, errJSONSyntax
			}
			i = space(d, i+1)
		}
	}
	if err := ops.add(&s.m); err != nil {
		s.refuse(err)
	}
	return i + 1, nil
}

// method reads the value at d[i] of a message's method, inside depth
// arrays and objects.
func (s *rpcScan) method(d []byte, i, depth int) (int, error) {
	if at(d, i) != '"' {
		s.refuse(errors.New("introspection: request method is not a string"))
		return skip(d, i, depth)
	}
	end, form, err := str(d, i)
	if err != nil {
		return end, err
	}
	var ok bool
	if s.m.method, ok = jsonText(d[i+1:end-1], form); !ok {
		s.refuse(errors.New("introspection: request method is not valid UTF-8"))
	}
	return end, nil
}

// params reads the value at d[i] of a message's params, inside depth
// arrays and objects.
func (s *rpcScan) params(d []byte, i, depth int) (int, error) {
	if at(d, i) != '{' {
		s.paramsFail(errors.New("introspection: tools/call params is not an object"))
		return skip(d, i, depth)
	}
	depth++
	i = space(d, i+1)
	if at(d, i) == '}' {
		return i + 1, nil
	}
	for {
		role, j, err := s.member(d, i, true)
		if err != nil {
			return j, err
		}
		if role == roleName {
			i, err = s.name(d, j, depth)
		} else {
			i, err = skip(d, j, depth)
		}
		if err != nil {
			return i, err
		}
		i = space(d, i)
		switch at(d, i) {
		case ',':
			i = space(d, i+1)
		case '}':
			return i + 1, nil
		default:
			return i, errJSONSyntax
		}
	}
}

// name reads the value at d[i] of params.name, inside depth arrays and
// objects.
func (s *rpcScan) name(d []byte, i, depth int) (int, error) {
	if at(d, i) != '"' {
		s.paramsFail(errors.New("introspection: tools/call params.name is not a string"))
		return skip(d, i, depth)
	}
	end, form, err := str(d, i)
	if err != nil {
		return end, err
	}
	var ok bool
	if s.m.name, ok = jsonText(d[i+1:end-1], form); !ok {
		s.paramsFail(errors.New("introspection: tools/call params.name is not valid UTF-8"))
	}
	return end, nil
}

// member reads the member name at d[i] in a message object, or in its
// params object if inParams, the colon and the white space after it, and
// returns the role of the member's value and its index.
func (s *rpcScan) member(d []byte, i int, inParams bool) (uint8, int, error) {
	if at(d, i) != '"' {
		return 0, i, errJSONSyntax
	}
	var (
		end  int
		form uint8 // strASCII
	)
	// A name that is ASCII without escapes and ends in its first eight
	// bytes, seven bytes or more before the end of d, is read here.
	if len(d)-i >= 9 {
		x := binary.LittleEndian.Uint64(d[i+1:])
		quotes, others := strMasks(x)
		if quotes != 0 && (others|x)&(quotes&-quotes-1)&msbs == 0 {
			end = i + 2 + bits.TrailingZeros64(quotes)/8
		}
	}
	if end == 0 {
		var err error
		if end, form, err = str(d, i); err != nil {
			return 0, end, err
		}
	}
	// No other ASCII name than one as long as method, params or name
	// gives the value a role or folds to one of them.
	var role uint8
	if n := end - i - 2; form != strASCII || inParams && n == len("name") || !inParams && n == len("method") {
		role = s.path(d[i+1:end-1], form, inParams)
	}
	end = space(d, end)
	if at(d, end) != ':' {
		return 0, end, errJSONSyntax
	}
	return role, space(d, end+1), nil
}

// path returns the role of the value of the member whose name, as written,
// is raw, of the form that str found, in a message object, or in its
// params object if inParams, and notes the reasons to refuse the body that
// the name gives.
func (s *rpcScan) path(raw []byte, form uint8, inParams bool) uint8 {
	name, ok, plain := raw, true, form == strASCII
	switch form {
	case strEscaped:
		name, ok = jsonText(raw, strEscaped)
		plain = ok && ascii(name)
	case strPlain:
		if plain = ascii(raw); !plain {
			ok = utf8.Valid(raw)
		}
	}
	if !inParams {
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

// maxQuickDepth is how deeply quickMessage follows arrays and objects: one
// bit for each, under a bit that marks the top, in a word. A body nested
// deeper is read by readRPC.
const maxQuickDepth = 62

// Words of up to eight bytes, little-endian, that quickMessage compares
// with the body.
const (
	// The names that clients send on the path, as they follow the quote
	// that begins them: the name, its closing quote and, when it fits, the
	// colon (arguments has 's"' after the word).
	keyMethod   = 'm' | 'e'<<8 | 't'<<16 | 'h'<<24 | 'o'<<32 | 'd'<<40 | '"'<<48 | ':'<<56
	keyParams   = 'p' | 'a'<<8 | 'r'<<16 | 'a'<<24 | 'm'<<32 | 's'<<40 | '"'<<48 | ':'<<56
	keyJSONRPC  = 'j' | 's'<<8 | 'o'<<16 | 'n'<<24 | 'r'<<32 | 'p'<<40 | 'c'<<48 | '"'<<56
	keyID       = 'i' | 'd'<<8 | '"'<<16 | ':'<<24
	keyName     = 'n' | 'a'<<8 | 'm'<<16 | 'e'<<24 | '"'<<32 | ':'<<40
	keyArgument = 'a' | 'r'<<8 | 'g'<<16 | 'u'<<24 | 'm'<<32 | 'e'<<40 | 'n'<<48 | 't'<<56
	keyMeta     = '_' | 'm'<<8 | 'e'<<16 | 't'<<24 | 'a'<<32 | '"'<<40 | ':'<<48

	// The values that clients send: "tools/call" and, after jsonrpc",
	// :"2.0", each in two words.
	valueToolsCall0 = '"' | 't'<<8 | 'o'<<16 | 'o'<<24 | 'l'<<32 | 's'<<40 | '/'<<48 | 'c'<<56
	valueToolsCall1 = 'a' | 'l'<<8 | 'l'<<16 | '"'<<24
	valueJSONRPC0   = ':' | '"'<<8 | '2'<<16 | '.'<<24
	valueJSONRPC1   = '0' | '"'<<8

	// The names on the path, and the bits that make an ASCII letter lower
	// case: an ASCII name folds to one of them exactly when, with these
	// bits set, it is that word.
	wordMethod = 'm' | 'e'<<8 | 't'<<16 | 'h'<<24 | 'o'<<32 | 'd'<<40
	wordParams = 'p' | 'a'<<8 | 'r'<<16 | 'a'<<24 | 'm'<<32 | 's'<<40
	wordName   = 'n' | 'a'<<8 | 'm'<<16 | 'e'<<24
	lower4     = 0x20202020
	lower6     = 0x202020202020
)

// quickMessage reads the body d when it is one message object of the
// common shape, in one pass without a call for each value, into m, and
// returns true. It returns false for any other body, which readRPC must
// then read: a batch or a first value that is not an object; a body that
// is not JSON, is nested deeper than maxQuickDepth, or has more than white
// space after the object; a member name on the path to the method or the
// tool (a name of the message or of its params object) that is not ASCII,
// holds an escape or folds to method, params or name without being that
// name; a method, params or name member twice; a method or a params.name
// that is not a string of ASCII without escapes; params that is not an
// object. What it reads into m is then what readRPC reads: it reads no
// other body.
//
// Where it is in the grammar is where it is in the code: a member name
// begins at name, a name has ended at colon, a value begins at value, a
// string value at str, and a value has ended at after.
func quickMessage(d []byte, m *rpcMessage) bool {
	var (
		i int
		c byte
		// open holds a bit for each array and object open, set for an
		// object, the innermost lowest, under a bit that marks the top: 3
		// in the message, 7 in an object in it.
		open     uint64
		inParams bool   // the message's params object is open
		role     uint8  // the role of the value at d[i]
		end      int    // the index of the quote that ends a string
		hi       uint64 // the high bits of the bytes of a string
	)
	if i = space(d, 0); uint(i) >= uint(len(d)) || d[i] != '{' {
		return false
	}
	open = 3
	if i = space(d, i+1); at(d, i) == '}' {
		goto after
	}

name: // A member name begins at d[i], maybe after white space.
	if uint(i) >= uint(len(d)) {
		return false
	}
	if d[i] != '"' {
		if i = space(d, i); at(d, i) != '"' {
			return false
		}
	}
	// The names that clients send on the path are compared eight bytes at
	// a time, with the quote that ends them and, for most, the colon.
	if uint(i)+9 <= uint(len(d)) && (open == 3 || open == 7 && inParams) {
		w := binary.LittleEndian.Uint64(d[i+1 : i+9])
		if open == 3 {
			switch {
			case w == keyMethod && !m.hasMethod:
				m.hasMethod, role = true, roleMethod
				i += 9
				goto value
			case w == keyParams && !m.hasParams:
				m.hasParams, role = true, roleParams
				i += 9
				goto value
			case w == keyJSONRPC:
				if uint(i)+15 <= uint(len(d)) && binary.LittleEndian.Uint32(d[i+9:i+13]) == valueJSONRPC0 &&
					binary.LittleEndian.Uint16(d[i+13:i+15]) == valueJSONRPC1 {
					i += 15
					goto after
				}
				end = i + 8
				goto colon
			case uint32(w) == keyID:
				i += 5
				goto value
			}
		} else {
			switch {
			case w&(1<<48-1) == keyName && !m.hasName:
				m.hasName, role = true, roleName
				i += 7
				goto value
			case w == keyArgument && uint(i)+11 <= uint(len(d)) && d[i+9] == 's' && d[i+10] == '"':
				end = i + 10
				goto colon
			case w&(1<<56-1) == keyMeta:
				i += 8
				goto value
			}
		}
	}
	// Another name is read as str reads a string.
	hi = 0
	for j := uint(i) + 1; ; j += 8 {
		if j+8 > uint(len(d)) {
			var plain bool
			if end, plain = strLong(d, i); end < 0 {
				return false
			}
			if !plain {
				hi = msbs
			}
			break
		}
		x := binary.LittleEndian.Uint64(d[j : j+8])
		y, b := x^(lsbs*0x02), x^(lsbs*'\\')
		stops := ((y-lsbs*0x21)&^y | (b-lsbs)&^b) & msbs
		if stops == 0 {
			hi |= x
			continue
		}
		if end = int(j) + bits.TrailingZeros64(stops)/8; d[end] != '"' {
			// A backslash or a control character.
			if end, _ = strLong(d, i); end < 0 {
				return false
			}
			hi = msbs
			break
		}
		hi |= x & (stops&-stops - 1)
		break
	}
	if open == 3 || open == 7 && inParams {
		if hi&msbs != 0 {
			return false
		}
		if n := end - i - 1; open == 3 && n == len("method") {
			if uint(i)+9 > uint(len(d)) { // not JSON: no room for the rest
				return false
			}
			switch v := binary.LittleEndian.Uint64(d[i+1:i+9]) & (1<<48 - 1); {
			case v == wordMethod && !m.hasMethod:
				m.hasMethod, role = true, roleMethod
			case v == wordParams && !m.hasParams:
				m.hasParams, role = true, roleParams
			case v|lower6 == wordMethod || v|lower6 == wordParams:
				return false
			}
		} else if open == 7 && n == len("name") {
			switch v := binary.LittleEndian.Uint32(d[i+1 : i+5]); {
			case v == wordName && !m.hasName:
				m.hasName, role = true, roleName
			case v|lower4 == wordName:
				return false
			}
		}
	}

colon: // A member name ends at d[end].
	if i = end + 1; at(d, i) != ':' {
		if i = space(d, i); at(d, i) != ':' {
			return false
		}
	}
	i++

value: // A value begins at d[i], maybe after white space.
	if uint(i) >= uint(len(d)) {
		return false
	}
	if c = d[i]; c <= ' ' {
		i = space(d, i)
		c = at(d, i)
	}
	if c == '"' {
		if role == roleOther {
			goto str
		}
		if role == roleMethod && uint(i)+12 <= uint(len(d)) &&
			binary.LittleEndian.Uint64(d[i:i+8]) == valueToolsCall0 &&
			binary.LittleEndian.Uint32(d[i+8:i+12]) == valueToolsCall1 {
			m.method, role = d[i+1:i+11], roleOther
			i += 12
			goto after
		}
		goto str
	}
	if role != roleOther {
		if c != '{' || role != roleParams {
			return false
		}
		inParams, role = true, roleOther
	}
	switch c {
	case '{', '[':
		if open>>maxQuickDepth != 0 {
			return false
		}
		open = open<<1 | uint64(c>>5&1) // '{' is 0x7b, '[' is 0x5b
		if i++; at(d, i) <= ' ' {
			i = space(d, i)
		}
		if at(d, i) == c+2 { // '}' is '{'+2, ']' is '['+2: it is empty
			goto after
		}
		if c == '{' {
			goto name
		}
		goto value
	case 't':
		if uint(i)+4 > uint(len(d)) || binary.LittleEndian.Uint32(d[i:i+4]) != 't'|'r'<<8|'u'<<16|'e'<<24 {
			return false
		}
		i += 4
	case 'f':
		if uint(i)+5 > uint(len(d)) || binary.LittleEndian.Uint32(d[i+1:i+5]) != 'a'|'l'<<8|'s'<<16|'e'<<24 {
			return false
		}
		i += 5
	case 'n':
		if uint(i)+4 > uint(len(d)) || binary.LittleEndian.Uint32(d[i:i+4]) != 'n'|'u'<<8|'l'<<16|'l'<<24 {
			return false
		}
		i += 4
	default:
		// An integer is read here, any other number by number.
		j := i
		if c == '-' {
			j++
			c = at(d, j)
		}
		switch {
		case c == '0':
			j++
		case c-'1' < 9:
			j = digits(d, j+1)
		default:
			return false
		}
		if c := at(d, j); c == '.' || c|0x20 == 'e' {
			var err error
			if j, err = number(d, i); err != nil {
				return false
			}
		}
		i = j
	}
	goto after

str: // A string value begins at d[i]: find the quote at d[end] that ends it.
	// Eight bytes at a time: flag in stops each byte that is a quote or a
	// control character (x^0x02 in each byte moves the quote to 0x20 and
	// keeps the control characters below it) or a backslash, the lowest
	// flag being a true one, and note in hi the high bits of the bytes
	// before the end.
	hi = 0
	for j := uint(i) + 1; ; j += 8 {
		if j+8 > uint(len(d)) {
			var plain bool
			if end, plain = strLong(d, i); end < 0 {
				return false
			}
			if !plain {
				hi = msbs
			}
			break
		}
		x := binary.LittleEndian.Uint64(d[j : j+8])
		y, b := x^(lsbs*0x02), x^(lsbs*'\\')
		stops := ((y-lsbs*0x21)&^y | (b-lsbs)&^b) & msbs
		if stops == 0 {
			hi |= x
			continue
		}
		if end = int(j) + bits.TrailingZeros64(stops)/8; d[end] != '"' {
			// A backslash or a control character.
			if end, _ = strLong(d, i); end < 0 {
				return false
			}
			hi = msbs
			break
		}
		hi |= x & (stops&-stops - 1)
		break
	}
	if role != roleOther {
		// The method or the tool's name.
		if hi&msbs != 0 || role == roleParams {
			return false
		}
		if role == roleMethod {
			m.method = d[i+1 : end]
		} else {
			m.name = d[i+1 : end]
		}
		role = roleOther
	}
	i = end + 1

after: // A value ends before d[i], maybe before white space.
	if uint(i) >= uint(len(d)) {
		return false
	}
	if c = d[i]; c <= ' ' {
		i = space(d, i)
		c = at(d, i)
	}
	if c == ',' {
		i++
		if open&1 != 0 {
			goto name
		}
		goto value
	}
	if c != ']'|byte(open&1)<<5 { // '}' is ']'|0x20
		return false
	}
	i++
	if open >>= 1; open <= 3 {
		if open == 1 {
			return space(d, i) == len(d)
		}
		inParams = false
	}
	goto after
}

// strLong reads the JSON string that begins at d[i], a quote, as str does,
// and returns the index of its closing quote, or -1 if it is not one, and
// whether it is ASCII without escapes.
func strLong(d []byte, i int) (end int, plain bool) {
	var hi uint64
	j := i + 1
	for ; j+8 <= len(d); j += 8 {
		x := binary.LittleEndian.Uint64(d[j:])
		quotes, others := strMasks(x)
		if quotes|others == 0 {
			hi |= x
			continue
		}
		if below := quotes&-quotes - 1; others&below == 0 {
			return j + bits.TrailingZeros64(quotes)/8, (hi|x&below)&msbs == 0
		}
		break
	}
	if j+8 > len(d) {
		for ; j < len(d); j++ {
			c := d[j]
			if c == '"' {
				return j, hi&msbs == 0
			}
			if c == '\\' || c < ' ' {
				break
			}
			hi |= uint64(c)
		}
	}
	e, _, err := strSlow(d, i)
	if err != nil {
		return -1, false
	}
	return e - 1, false
}

// skip reads the value that begins at d[i], which is not white space,
// inside depth arrays and objects, and returns the index past it. It reads
// the arrays and objects in it in one loop, keeping one bit for each that
// is open (set for an object): the innermost 64 in a word, the others in a
// slice made when needed.
func skip(d []byte, i, depth int) (int, error) {
	var (
		n       int      // the arrays and objects open in the value
		objects uint64   // bit k: the k-th innermost of the last n%64 (or 64) is an object
		outer   []uint64 // objects of the outer ones, 64 at a time
	)
	room := maxJSONDepth - depth
	for {
		// A value begins at d[i].
		if i >= len(d) {
			return i, errJSONSyntax
		}
		switch c := d[i]; c {
		case '"':
			// A string without escapes that ends in its first eight bytes,
			// seven bytes or more before the end of d, is read here.
			if len(d)-i >= 9 {
				quotes, others := strMasks(binary.LittleEndian.Uint64(d[i+1:]))
				if quotes != 0 && others&(quotes&-quotes-1) == 0 {
					i += 2 + bits.TrailingZeros64(quotes)/8
					break
				}
			}
			if i = strEnd(d, i); i < 0 {
				return 0, errJSONSyntax
			}
		case '{', '[':
			if n == room {
				return i, errJSONTooDeep
			}
			if n > 0 && n%64 == 0 {
				outer = append(outer, objects)
				objects = 0
			}
			n++
			objects = objects<<1 | uint64(c>>5&1) // '{' is 0x7b, '[' is 0x5b
			i = space(d, i+1)
			if c == '{' {
				if at(d, i) != '}' {
					var err error
					if i, err = key(d, i); err != nil {
						return i, err
					}
					continue
				}
			} else if at(d, i) != ']' {
				continue
			}
			// It is empty: the after-value loop closes it.
		case 't':
			if len(d)-i < 4 || binary.LittleEndian.Uint32(d[i:]) != 't'|'r'<<8|'u'<<16|'e'<<24 {
				return i, errJSONSyntax
			}
			i += 4
		case 'f':
			if len(d)-i < 5 || binary.LittleEndian.Uint32(d[i+1:]) != 'a'|'l'<<8|'s'<<16|'e'<<24 {
				return i, errJSONSyntax
			}
			i += 5
		case 'n':
			if len(d)-i < 4 || binary.LittleEndian.Uint32(d[i:]) != 'n'|'u'<<8|'l'<<16|'l'<<24 {
				return i, errJSONSyntax
			}
			i += 4
		default:
			var err error
			if i, err = number(d, i); err != nil {
				return i, err
			}
		}
		// A value ends before d[i]: close what ends with it.
		for {
			if n == 0 {
				return i, nil
			}
			c := at(d, i)
			if c <= ' ' {
				i = space(d, i)
				c = at(d, i)
			}
			object := objects&1 != 0
			if c == ',' {
				i = space(d, i+1)
				if object {
					var err error
					if i, err = key(d, i); err != nil {
						return i, err
					}
				}
				break
			}
			if object && c != '}' || !object && c != ']' {
				return i, errJSONSyntax
			}
			i++
			n--
			objects >>= 1
			if n > 0 && n%64 == 0 {
				objects = outer[len(outer)-1]
				outer = outer[:len(outer)-1]
			}
		}
	}
}

// key reads the member name at d[i] in an object that skip reads, the
// colon and the white space after it, and returns the index of the
// member's value.
func key(d []byte, i int) (int, error) {
	if at(d, i) != '"' {
		return i, errJSONSyntax
	}
	// As in skip, a short string is read here.
	end := 0
	if len(d)-i >= 9 {
		quotes, others := strMasks(binary.LittleEndian.Uint64(d[i+1:]))
		if quotes != 0 && others&(quotes&-quotes-1) == 0 {
			end = i + 2 + bits.TrailingZeros64(quotes)/8
		}
	}
	if end == 0 {
		if end = strEnd(d, i); end < 0 {
			return 0, errJSONSyntax
		}
	}
	i = end
	if at(d, i) != ':' {
		if i = space(d, i); at(d, i) != ':' {
			return i, errJSONSyntax
		}
	}
	return space(d, i+1), nil
}

// space returns the index of the first byte at or after i that is not
// JSON white space.
func space(d []byte, i int) int {
	for uint(i) < uint(len(d)) && d[i] <= ' ' && (d[i] == ' ' || d[i] == '\t' || d[i] == '\n' || d[i] == '\r') {
		i++
	}
	return i
}

// at returns d[i], or 0 past the end.
func at(d []byte, i int) byte {
	if uint(i) < uint(len(d)) {
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

// stop returns the index of the first quote, backslash or control
// character at or after j, or len(d).
func stop(d []byte, j int) int {
	// Eight bytes at a time: flag in m each byte that is a quote, a
	// backslash or a control character. The lowest flag is always a true
	// one.
	for ; j+8 <= len(d); j += 8 {
		if m := stops(binary.LittleEndian.Uint64(d[j:])); m != 0 {
			return j + bits.TrailingZeros64(m)/8
		}
	}
	for j < len(d) && !stringStop[d[j]] {
		j++
	}
	return j
}

// stops flags the high bit of the lowest byte of x that is a quote, a
// backslash or a control character, and maybe of bytes above it.
func stops(x uint64) uint64 {
	q, b := x^(lsbs*'"'), x^(lsbs*'\\')
	return ((q-lsbs)&^q | (b-lsbs)&^b | (x-lsbs*0x20)&^x) & msbs
}

// strEnd returns the index past the closing quote of the JSON string that
// begins at d[i], a quote, or -1 if it is not one.
func strEnd(d []byte, i int) int {
	// A string without escapes that ends seven bytes or more before the
	// end of d is read here, eight bytes at a time.
	for j := i + 1; j+8 <= len(d); j += 8 {
		quotes, others := strMasks(binary.LittleEndian.Uint64(d[j:]))
		if quotes != 0 && others&(quotes&-quotes-1) == 0 {
			return j + bits.TrailingZeros64(quotes)/8 + 1
		}
		if quotes|others != 0 {
			break
		}
	}
	end, _, err := strSlow(d, i)
	if err != nil {
		return -1
	}
	return end
}

// strMasks flags the high bit of each byte of x that is a quote in quotes,
// and of each that is a backslash or a control character in others; a flag
// above the lowest true flag of either may be false.
func strMasks(x uint64) (quotes, others uint64) {
	q, b := x^(lsbs*'"'), x^(lsbs*'\\')
	return (q - lsbs) &^ q & msbs, ((b-lsbs)&^b | (x-lsbs*0x20)&^x) & msbs
}

// The forms of a JSON string that str tells apart.
const (
	strASCII   = iota // ASCII without escapes
	strPlain          // without escapes, maybe not ASCII
	strEscaped        // with escapes
)

// str reads the JSON string that begins at d[i], a quote, and returns the
// index past its closing quote, and its form; its inside, as written, is
// d[i+1:end-1]. A string without escapes that ends seven bytes or more
// before the end of d is read here, eight bytes at a time, noting in hi
// the high bits of its bytes; strSlow reads the others.
func str(d []byte, i int) (end int, form uint8, err error) {
	var hi uint64
	for j := i + 1; j+8 <= len(d); j += 8 {
		x := binary.LittleEndian.Uint64(d[j:])
		quotes, others := strMasks(x)
		if quotes != 0 {
			// The lowest flag in quotes is a true quote, and a flag in others
			// below it is a true backslash or control character.
			below := quotes&-quotes - 1
			if others&below != 0 {
				break
			}
			end = j + bits.TrailingZeros64(quotes)/8 + 1
			if (hi|x&below)&msbs == 0 {
				return end, strASCII, nil
			}
			return end, strPlain, nil
		}
		if others != 0 {
			break
		}
		hi |= x
	}
	end, escaped, err := strSlow(d, i)
	if escaped {
		return end, strEscaped, err
	}
	return end, strPlain, err
}

// strSlow reads any JSON string as str does, and returns whether it holds
// escapes.
func strSlow(d []byte, i int) (end int, escaped bool, err error) {
	j := i + 1
	for {
		j = stop(d, j)
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
// a string that str read, and form what str reported of it.
func jsonText(raw []byte, form uint8) ([]byte, bool) {
	switch form {
	case strASCII:
		return raw, true
	case strPlain:
		return raw, ascii(raw) || utf8.Valid(raw)
	}
	out, exact := appendUnquotedExact(make([]byte, 0, len(raw)), raw)
	return out, exact && utf8.Valid(out)
}
