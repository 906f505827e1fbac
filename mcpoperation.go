package introspection

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// DefaultMCPMaxBodySize is the largest request body, in bytes, that an
// [OperationFunc] from [MCPOperation] reads when MCPScopes.MaxBodySize is
// zero: 4 MiB, the go-sdk's own default (mcp-go sets none). Typical MCP
// requests are a few hundred bytes.
const DefaultMCPMaxBodySize = 4 << 20

// maxInitialBodyBuffer is the most that readBody sets aside for a body
// before its bytes arrive, however long the request says it is: a larger
// body grows its buffer as it comes.
const maxInitialBodyBuffer = 64 << 10

// maxMCPName is the longest tool or method name that MCPScopes may hold, in
// bytes: the MCP spec's bound for tool names.
const maxMCPName = 128

// MCPScopes maps MCP JSON-RPC requests to the scopes they need, on top of
// Settings.RequiredScopes and MiddlewareOptions.Scopes.
type MCPScopes struct {
	// Tools maps a tool name (params.name of tools/call) to the scopes a
	// call of it needs. Names are 1 to 128 ASCII letters, digits, '_', '-'
	// and '.', as the MCP spec asks of tool names. A tool not listed needs
	// no scopes of its own.
	Tools map[string][]string
	// Methods maps a JSON-RPC method (for example "resources/read") to the
	// scopes it needs; an entry for "tools/call" applies to every tool
	// call, on top of Tools. Names are 1 to 128 printable ASCII characters
	// other than space, '"' and '\'. A method not listed needs no scopes of
	// its own.
	Methods map[string][]string
	// MaxBodySize caps the body read, in bytes. Zero means
	// DefaultMCPMaxBodySize. A larger body is refused with an error that
	// wraps ErrRequestTooLarge (413 from the middleware). Keep it at or
	// below the SDK's own limit.
	MaxBodySize int64
}

// MCPOperation returns the [OperationFunc] for m, after checking every
// scope in it: each must be an RFC 6749 §3.3 scope-token, and none may be
// offline_access, which asks for refresh tokens rather than access to
// anything and which a challenge never names. It copies m, so later
// changes to m do nothing.
//
// The OperationFunc reads only POST bodies; other requests get a zero
// Operation and their body is never touched. It reads the body through
// the MaxBodySize cap and puts it back for the next handler byte for byte,
// then reads it as both Go MCP SDKs (the go-sdk and mcp-go) read it:
//
//   - A tools/call needs Methods["tools/call"] and Tools[params.name], and
//     is named `tool "echo"` (`method "tools/call"` for a tool not in
//     Tools). Another method needs Methods[method] and is named
//     `method "resources/read"`; one that Methods does not list gets a zero
//     Operation.
//   - A JSON-RPC batch (a top-level array) needs every scope that any of its
//     requests needs, and its Name lists their operations, each once.
//   - A body whose first value is not JSON gets a zero Operation and goes on
//     as it came, for the SDK to answer with a parse error.
//   - A body that the SDKs could read differently, from the peek or from
//     each other, is refused with an error (400 from the middleware): a
//     member on the path to the method or the tool whose name folds to
//     method, params or name under encoding/json's case-insensitive
//     matching but is not that name; any of these members twice; invalid
//     UTF-8 or a lone surrogate in the method, the tool's name or a member
//     name on the path; a method that is not a string; a tools/call without
//     a params object holding a string name; anything but white space after
//     a first value that is an object or an array; nesting deeper than
//     1000, the go-sdk's bound.
//
// The Scopes of the Operations it returns are shared between requests:
// they may be appended to, but not changed in place.
func MCPOperation(m MCPScopes) (OperationFunc, error) {
	p, err := newMCPPeek(m)
	if err != nil {
		return nil, err
	}
	return func(r *http.Request) (Operation, error) {
		if r.Method != http.MethodPost || r.Body == nil || r.Body == http.NoBody {
			return Operation{}, nil
		}
		body, err := readBody(r, p.maxBody)
		if err != nil {
			return Operation{}, err
		}
		op, err := p.read(body)
		return *op, err
	}, nil
}

// mcpPeek is the compiled form of an MCPScopes. It is read-only once built.
type mcpPeek struct {
	tools   opTable   // a tools/call of a tool in MCPScopes.Tools
	anyTool Operation // a tools/call of another tool
	methods opTable   // a request of a method in MCPScopes.Methods
	maxBody int64
}

func newMCPPeek(m MCPScopes) (*mcpPeek, error) {
	if m.MaxBodySize < 0 {
		return nil, fmt.Errorf("introspection: MCPScopes.MaxBodySize must not be negative, got %d", m.MaxBodySize)
	}
	p := &mcpPeek{maxBody: m.MaxBodySize}
	if p.maxBody == 0 {
		p.maxBody = DefaultMCPMaxBodySize
	}
	methods := make(map[string]Operation, len(m.Methods))
	for method, scopes := range m.Methods {
		if !validMethodName(method) {
			return nil, fmt.Errorf("introspection: MCPScopes.Methods has an invalid method %s", strconv.QuoteToASCII(method))
		}
		if err := checkOperationScopes(scopes); err != nil {
			return nil, err
		}
		methods[method] = Operation{Name: `method "` + method + `"`, Scopes: mergeScopes(nil, scopes)}
	}
	callScopes := m.Methods["tools/call"]
	p.anyTool = Operation{Name: `method "tools/call"`, Scopes: mergeScopes(nil, callScopes)}
	tools := make(map[string]Operation, len(m.Tools))
	for tool, scopes := range m.Tools {
		if !validToolName(tool) {
			return nil, fmt.Errorf("introspection: MCPScopes.Tools has an invalid tool name %s", strconv.QuoteToASCII(tool))
		}
		if err := checkOperationScopes(scopes); err != nil {
			return nil, err
		}
		tools[tool] = Operation{Name: `tool "` + tool + `"`, Scopes: mergeScopes(mergeScopes(nil, callScopes), scopes)}
	}
	p.methods, p.tools = newOpTable(methods), newOpTable(tools)
	return p, nil
}

// opTable maps names of 1 to maxMCPName bytes to their Operations: open
// addressing over a power-of-two number of slots, at least twice as many
// as names, probed one after the other from the nameHash of the name. It
// finds the Operation of a short name in about half the instructions of a
// map lookup, and does not hash a name too long to be in it. It is
// read-only once built.
type opTable struct {
	slots []opSlot
}

// opSlot is a slot of an opTable.
type opSlot struct {
	name string // "" in an empty slot
	op   Operation
}

// newOpTable returns the table of ops, whose names must be 1 to
// maxMCPName bytes.
func newOpTable(ops map[string]Operation) opTable {
	size := 1
	for size < 2*len(ops) {
		size <<= 1
	}
	t := opTable{slots: make([]opSlot, size)}
	mask := uint64(size - 1)
	for name, op := range ops {
		i := nameHash([]byte(name)) & mask
		for t.slots[i].name != "" {
			i = (i + 1) & mask
		}
		t.slots[i] = opSlot{name: name, op: op}
	}
	return t
}

// noOperation is the zero Operation, which find returns for a name that
// a table does not have. It must not be changed.
var noOperation Operation

// find returns the Operation of name, or &noOperation if the table does
// not have it. The caller must not change it.
func (t opTable) find(name []byte) *Operation {
	if len(name) == 0 || len(name) > maxMCPName {
		return &noOperation
	}
	mask := uint64(len(t.slots) - 1)
	for i := nameHash(name) & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.name == string(name) {
			return &s.op
		}
		if s.name == "" {
			return &noOperation
		}
	}
}

// nameHash returns a hash of s, eight bytes at a time.
func nameHash(s []byte) uint64 {
	const k1, k2 = 0x9e3779b97f4a7c15, 0xff51afd7ed558ccd
	h := uint64(len(s)) * k1
	for ; len(s) > 8; s = s[8:] {
		h = (h ^ binary.LittleEndian.Uint64(s)) * k2
		h ^= h >> 29
	}
	// The last one to eight bytes, as two words that may overlap.
	var w uint64
	switch n := len(s); {
	case n >= 4:
		w = uint64(binary.LittleEndian.Uint32(s)) | uint64(binary.LittleEndian.Uint32(s[n-4:]))<<32
	case n > 0:
		w = uint64(s[0]) | uint64(s[n/2])<<8 | uint64(s[n-1])<<16
	}
	h = (h ^ w) * k2
	return h ^ h>>32
}

// checkOperationScopes refuses a scope that is not an RFC 6749 §3.3
// scope-token, and offline_access.
func checkOperationScopes(scopes []string) error {
	for _, s := range scopes {
		if !validOperationScope(s) {
			return fmt.Errorf("introspection: MCPScopes has an invalid scope %s", strconv.QuoteToASCII(s))
		}
		if s == "offline_access" {
			return errors.New("introspection: MCPScopes must not require offline_access: it asks for refresh tokens, not for access, and challenges never name it")
		}
	}
	return nil
}

// validOperationScope reports whether s is an RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validOperationScope(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// validToolName reports whether s is a tool name as the MCP spec asks:
// 1 to 128 ASCII letters, digits, '_', '-' and '.'.
func validToolName(s string) bool {
	if s == "" || len(s) > maxMCPName {
		return false
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		default:
			return false
		}
	}
	return true
}

// validMethodName reports whether s is 1 to 128 printable ASCII characters
// other than space, '"' and '\', so that it can be quoted in a Name as it is.
func validMethodName(s string) bool {
	return s != "" && len(s) <= maxMCPName && validOperationScope(s)
}

// mergeScopes appends to dst the scopes in add that it does not hold yet,
// and returns it with no room to grow, so that a caller's append copies it.
func mergeScopes(dst, add []string) []string {
	for _, s := range add {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	return slices.Clip(dst)
}

// peekedBody is a request body that was read and put back: the bytes not
// read yet.
type peekedBody struct{ rest []byte }

// Read reads the next len(p) bytes, or all that is left, into p; at the end
// of the body it returns io.EOF, as a bytes.Reader does.
func (b *peekedBody) Read(p []byte) (int, error) {
	if len(b.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	return n, nil
}

// Close does nothing: the body was closed when it was read.
func (*peekedBody) Close() error { return nil }

// maxInlineBody is the longest body, in bytes, of a request that states
// its length, that readBody reads into the same allocation as the body it
// puts back (with room for the read that finds the end, and its state):
// 4087 bytes, so that a body of up to 4 KiB in all costs one allocation. A
// longer one costs two.
const maxInlineBody = len(inlineBody4096{}.buf) - 1

// inlineBody is the state of a request body that was read into a buffer
// of its own and put back: its bytes are buf[off:end] of the buffer. The
// types that embed it hold the buffer after it, in one object without
// pointers whose size is one of the allocator's size classes, from 128
// bytes to 4 KiB.
type inlineBody struct{ off, end int32 }

// read reads the next len(p) bytes, or all that is left, of buf into p; at
// the end of the body it returns io.EOF, as a bytes.Reader does.
func (b *inlineBody) read(buf, p []byte) (int, error) {
	if b.off >= b.end {
		return 0, io.EOF
	}
	n := copy(p, buf[b.off:b.end])
	b.off += int32(n)
	return n, nil
}

// Close does nothing: the body was closed when it was read.
func (*inlineBody) Close() error { return nil }

// The bodies with buffers of their own, each named for its size in all.
type (
	inlineBody128 struct {
		inlineBody
		buf [128 - 8]byte
	}
	inlineBody192 struct {
		inlineBody
		buf [192 - 8]byte
	}
	inlineBody256 struct {
		inlineBody
		buf [256 - 8]byte
	}
	inlineBody384 struct {
		inlineBody
		buf [384 - 8]byte
	}
	inlineBody512 struct {
		inlineBody
		buf [512 - 8]byte
	}
	inlineBody1024 struct {
		inlineBody
		buf [1024 - 8]byte
	}
	inlineBody2048 struct {
		inlineBody
		buf [2048 - 8]byte
	}
	inlineBody4096 struct {
		inlineBody
		buf [4096 - 8]byte
	}
)

// Read reads the next len(p) bytes of the body, or all that is left, into
// p, as inlineBody.read does.
func (b *inlineBody128) Read(p []byte) (int, error)  { return b.read(b.buf[:], p) }
func (b *inlineBody192) Read(p []byte) (int, error)  { return b.read(b.buf[:], p) }
func (b *inlineBody256) Read(p []byte) (int, error)  { return b.read(b.buf[:], p) }
func (b *inlineBody384) Read(p []byte) (int, error)  { return b.read(b.buf[:], p) }
func (b *inlineBody512) Read(p []byte) (int, error)  { return b.read(b.buf[:], p) }
func (b *inlineBody1024) Read(p []byte) (int, error) { return b.read(b.buf[:], p) }
func (b *inlineBody2048) Read(p []byte) (int, error) { return b.read(b.buf[:], p) }
func (b *inlineBody4096) Read(p []byte) (int, error) { return b.read(b.buf[:], p) }

// newInlineBody returns the smallest body with a buffer of its own that
// has room for room bytes, its state and its buffer, or nils if room is
// over maxInlineBody+1.
func newInlineBody(room int) (io.ReadCloser, *inlineBody, []byte) {
	switch {
	case room <= len(inlineBody128{}.buf):
		b := new(inlineBody128)
		return b, &b.inlineBody, b.buf[:]
	case room <= len(inlineBody192{}.buf):
		b := new(inlineBody192)
		return b, &b.inlineBody, b.buf[:]
	case room <= len(inlineBody256{}.buf):
		b := new(inlineBody256)
		return b, &b.inlineBody, b.buf[:]
	case room <= len(inlineBody384{}.buf):
		b := new(inlineBody384)
		return b, &b.inlineBody, b.buf[:]
	case room <= len(inlineBody512{}.buf):
		b := new(inlineBody512)
		return b, &b.inlineBody, b.buf[:]
	case room <= len(inlineBody1024{}.buf):
		b := new(inlineBody1024)
		return b, &b.inlineBody, b.buf[:]
	case room <= len(inlineBody2048{}.buf):
		b := new(inlineBody2048)
		return b, &b.inlineBody, b.buf[:]
	case room <= len(inlineBody4096{}.buf):
		b := new(inlineBody4096)
		return b, &b.inlineBody, b.buf[:]
	}
	return nil, nil, nil
}

// unknownLengthRoom is the room that readBody sets aside for a body whose
// request does not state its length, before its bytes arrive.
const unknownLengthRoom = 512 - 8

// readBody reads r.Body, of at most limit bytes, closes it and puts its
// bytes back as r.Body. A body that fits is read into the buffer of an
// inlineBody, any other into a buffer that grows as it comes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	n := r.ContentLength
	if n > limit {
		return nil, fmt.Errorf("%w: %d bytes stated, over %d", ErrRequestTooLarge, n, limit)
	}
	room := int64(unknownLengthRoom)
	if n >= 0 {
		room = min(n, maxInitialBodyBuffer-1) + 1 // room for the read that finds the end; n+1 may overflow
	}
	var buf []byte
	if room <= int64(maxInlineBody)+1 {
		body, state, b := newInlineBody(int(room))
		b, done, err := readInto(r.Body, b[:0], limit, false)
		if err != nil {
			return nil, err
		}
		if done {
			_ = r.Body.Close()
			state.end = int32(len(b))
			r.Body = body
			return b, nil
		}
		// Longer than its buffer: go on in one that grows.
		buf = append(make([]byte, 0, 2*len(b)), b...)
	} else {
		buf = make([]byte, 0, room)
	}
	buf, _, err := readInto(r.Body, buf, limit, true)
	if err != nil {
		return nil, err
	}
	_ = r.Body.Close()
	r.Body = &peekedBody{rest: buf}
	return buf, nil
}

// readInto reads body into buf after its len(buf) bytes, up to its end
// or, unless grow, until buf is full, and reports whether it read to the
// end. A body of more than limit bytes is an error that wraps
// ErrRequestTooLarge.
func readInto(body io.Reader, buf []byte, limit int64, grow bool) ([]byte, bool, error) {
	for {
		if len(buf) == cap(buf) {
			if !grow {
				return buf, false, nil
			}
			buf = slices.Grow(buf, 1)
		}
		end := cap(buf)
		if int64(end) > limit { // so that limit+1 cannot overflow
			end = int(limit) + 1
		}
		k, err := body.Read(buf[len(buf):end])
		buf = buf[:len(buf)+k]
		if int64(len(buf)) > limit {
			return nil, false, fmt.Errorf("%w: over %d bytes", ErrRequestTooLarge, limit)
		}
		if err == io.EOF {
			return buf, true, nil
		}
		if err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				return nil, false, fmt.Errorf("%w: %w", ErrRequestTooLarge, err)
			}
			return nil, false, fmt.Errorf("introspection: reading the request body: %w", err)
		}
	}
}

// read returns the Operation of a request body, which the caller must not
// change: of the message that quickMessage reads, or else as readCarefully
// reads it.
func (p *mcpPeek) read(body []byte) (*Operation, error) {
	var m rpcMessage
	if quickMessage(body, &m) {
		return p.messageOperation(&m)
	}
	return p.readCarefully(body)
}

// readCarefully returns the Operation of a request body, read by readRPC,
// which the caller must not change.
func (p *mcpPeek) readCarefully(body []byte) (*Operation, error) {
	ops := opList{peek: p}
	switch err := readRPC(body, &ops); {
	case errors.Is(err, errJSONSyntax):
		// Not JSON: the SDK answers it with a parse error.
		return &noOperation, nil
	case err != nil:
		return &noOperation, err
	}
	return ops.operation(), nil
}

// opList gathers the Operations of the messages in a body, which it does
// not change.
type opList struct {
	peek  *mcpPeek
	first *Operation   // the first named operation, or nil
	more  []*Operation // the other named operations of a batch, each once
}

// add adds the Operation of message m, or returns why m is refused.
func (l *opList) add(m *rpcMessage) error {
	op, err := l.peek.messageOperation(m)
	switch {
	case err != nil:
		return err
	case op.Name == "":
	case l.first == nil:
		l.first = op
	case op.Name == l.first.Name:
	case !slices.ContainsFunc(l.more, func(o *Operation) bool { return o.Name == op.Name }):
		l.more = append(l.more, op)
	}
	return nil
}

// operation returns the Operation of all the messages together: the
// union of their scopes, named by the list of their names.
func (l *opList) operation() *Operation {
	if l.first == nil {
		return &noOperation
	}
	if len(l.more) == 0 {
		return l.first
	}
	names := []string{l.first.Name}
	scopes := mergeScopes(nil, l.first.Scopes)
	for _, o := range l.more {
		names = append(names, o.Name)
		scopes = mergeScopes(scopes, o.Scopes)
	}
	return &Operation{Name: strings.Join(names, ", "), Scopes: scopes}
}

// messageOperation returns the Operation of message m, which the caller
// must not change, or why m is refused.
func (p *mcpPeek) messageOperation(m *rpcMessage) (*Operation, error) {
	switch {
	case !m.hasMethod:
		return &noOperation, nil
	case string(m.method) != "tools/call":
		return p.methods.find(m.method), nil
	case m.paramsErr != nil:
		return &noOperation, m.paramsErr
	case !m.hasParams:
		return &noOperation, errors.New("introspection: tools/call has no params")
	case !m.hasName:
		return &noOperation, errors.New("introspection: tools/call params has no name")
	}
	if op := p.tools.find(m.name); op != &noOperation {
		return op, nil
	}
	return &p.anyTool, nil
}
