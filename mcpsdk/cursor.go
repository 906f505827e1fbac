package mcpsdk

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// cursorKeySize is the size of the AES-256 key that seals cursors.
const cursorKeySize = 32

// cursorAAD is the additional data of every sealed cursor, so that the key
// opens nothing else by accident.
var cursorAAD = []byte("mcpauth/introspection/mcpsdk tools/list cursor v1")

// cursorSealer hides the SDK's tools/list cursors from clients. The
// go-sdk's cursor is the name of the last tool of the page, in base64 gob:
// a client could read a hidden tool's name in it, or write one to list the
// tools after any name. A sealed cursor is AES-256-GCM, with a random nonce,
// of the SDK's cursor under a key that the sealer made, in base64url with
// padding, as the SDK's own. It is safe for concurrent use.
type cursorSealer struct {
	aead cipher.AEAD // never changed after newCursorSealer
}

// newCursorSealer returns a sealer with a random key of its own.
func newCursorSealer() *cursorSealer {
	key := make([]byte, cursorKeySize)
	_, _ = rand.Read(key) // never fails; crashes the program if it could not
	block, err := aes.NewCipher(key)
	if err != nil { // a 32-byte key is always valid
		panic("introspection: mcpsdk: " + err.Error())
	}
	aead, err := cipher.NewGCMWithRandomNonce(block)
	if err != nil { // AES has the block size GCM needs
		panic("introspection: mcpsdk: " + err.Error())
	}
	return &cursorSealer{aead: aead}
}

// seal returns the cursor that the client sees for the SDK's cursor c.
func (s *cursorSealer) seal(c string) string {
	return base64.URLEncoding.EncodeToString(s.aead.Seal(nil, nil, []byte(c), cursorAAD))
}

// open returns the SDK's cursor from sealed as the client sent it, and
// false unless s sealed it, unchanged.
func (s *cursorSealer) open(sealed string) (string, bool) {
	b, err := base64.URLEncoding.Strict().DecodeString(sealed)
	if err != nil {
		return "", false
	}
	c, err := s.aead.Open(nil, nil, b, cursorAAD)
	if err != nil {
		return "", false
	}
	return string(c), true
}

// errInvalidCursor returns the JSON-RPC error with which the SDK answers a
// cursor it cannot read (the MCP pagination spec asks for invalid params).
func errInvalidCursor() error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid params"}
}
