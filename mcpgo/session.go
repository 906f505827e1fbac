package mcpgo

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash"
	"net/http"
	"strings"
)

// MinSessionKeySize is the shortest Options.SessionKey, in bytes: the
// output size of SHA-256, so that the key is as strong as the HMAC.
const MinSessionKeySize = sha256.Size

// sessionHeader is the streamable HTTP transport's session header.
const sessionHeader = "Mcp-Session-Id"

// lastEventIDHeader is the header with which a client resumes an event
// stream (the MCP streamable HTTP transport's "Resumability and
// Redelivery").
const lastEventIDHeader = "Last-Event-ID"

// sealSeparator stands between the session id that mcp-go issued and its
// seal. The seal is base64url, which never holds it, so the last one
// separates them whatever the id holds.
const sealSeparator = "."

// sealLen is the length of a seal: an HMAC-SHA256 in unpadded base64url.
var sealLen = base64.RawURLEncoding.EncodedLen(sha256.Size)

// sealDomain starts every sealed message, so that the key signs nothing
// else by accident.
const sealDomain = "mcpauth/introspection/mcpgo session id v1\x00"

// sealer binds session ids to user ids. It is safe for concurrent use.
type sealer struct {
	key []byte // never changed after newSealer
}

// newSealer returns a sealer with a copy of key, or with a random key when
// key is nil.
func newSealer(key []byte) (*sealer, error) {
	if key == nil {
		key = make([]byte, MinSessionKeySize)
		_, _ = rand.Read(key) // never fails; crashes the program if it could not
		return &sealer{key: key}, nil
	}
	if len(key) < MinSessionKeySize {
		return nil, fmt.Errorf("introspection: mcpgo: Options.SessionKey has %d bytes, fewer than %d", len(key), MinSessionKeySize)
	}
	return &sealer{key: append([]byte(nil), key...)}, nil
}

// seal returns id as the client sees it when user opened the session:
// id, the separator and the HMAC of user and id.
func (s *sealer) seal(user, id string) string {
	return id + sealSeparator + s.mac(user, id)
}

// open returns the session id that mcp-go issued, from sealed as the
// client sent it, and false unless it was sealed for user with s's key.
func (s *sealer) open(user, sealed string) (string, bool) {
	i := strings.LastIndex(sealed, sealSeparator)
	if i <= 0 || len(sealed)-i-len(sealSeparator) != sealLen {
		return "", false
	}
	id, got := sealed[:i], sealed[i+len(sealSeparator):]
	if !hmac.Equal([]byte(got), []byte(s.mac(user, id))) {
		return "", false
	}
	return id, true
}

// mac returns the HMAC-SHA256 of the domain, user and id, in unpadded
// base64url. user is length-prefixed, so that no two (user, id) pairs
// make one message.
func (s *sealer) mac(user, id string) string {
	m := hmac.New(sha256.New, s.key)
	writeString(m, sealDomain)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(user)))
	_, _ = m.Write(n[:])
	writeString(m, user)
	writeString(m, id)
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func writeString(h hash.Hash, s string) { _, _ = h.Write([]byte(s)) }

// sealingWriter seals the session id that the handler behind it issues
// (mcp-go sets Mcp-Session-Id on its answer to initialize) before the
// header is written.
type sealingWriter struct {
	http.ResponseWriter
	seal   func(id string) string
	sealed bool // the header was sealed; used under the handler's own serialization of writes
}

// sealHeader seals every Mcp-Session-Id of the header, once.
func (w *sealingWriter) sealHeader() {
	if w.sealed {
		return
	}
	w.sealed = true
	h := w.ResponseWriter.Header()
	ids := h[sessionHeader]
	if len(ids) == 0 {
		return
	}
	sealed := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != "" {
			sealed = append(sealed, w.seal(id))
		}
	}
	h[sessionHeader] = sealed
}

// WriteHeader seals the header and writes it.
func (w *sealingWriter) WriteHeader(status int) {
	w.sealHeader()
	w.ResponseWriter.WriteHeader(status)
}

// Write seals the header before the first write.
func (w *sealingWriter) Write(b []byte) (int, error) {
	w.sealHeader()
	return w.ResponseWriter.Write(b)
}

// Flush seals the header and flushes, so that mcp-go streams its events
// through this writer.
func (w *sealingWriter) Flush() {
	w.sealHeader()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the writer behind w, for [http.ResponseController].
func (w *sealingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
